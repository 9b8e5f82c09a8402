//! Choosing the parser for each line.
//!
//! - A source whose path matches a `[[parse.sources]]` glob uses that format; a line that
//!   does not parse in it is kept as plain text and flagged `parse_error`.
//! - Otherwise detection is automatic: the parser that matched the source's previous line
//!   is tried first (steady traffic costs one parser per line), then the built-in parsers
//!   in order, ending with plain text, which always matches. A line that looks like a JSON
//!   object but is not valid JSON is also flagged `parse_error`.
//! - User-defined formats (`[[parse.custom]]`) are used only where a source names them, so
//!   a loose pattern cannot swallow other sources' lines.
//!
//! The per-source memory of the last format is bounded ([`MAX_REMEMBERED`] sources).
//!
//! A detector is cheap to clone: the parsers are shared, the memory is copied. The
//! pipeline gives each worker thread its own clone, so the memory is per worker — a hint
//! for speed, never a condition for correctness.

use std::collections::HashMap;
use std::sync::Arc;

use logferry_shared::event::Timestamp;

use super::custom::{CustomParser, CustomPattern};
use super::{builtin, ParseContext, Parsed, Parser, Zone};

/// Sources whose last format is remembered; past it the memory starts over.
pub const MAX_REMEMBERED: usize = 16_384;

/// A user's `[[parse.sources]]` entry, compiled.
struct Forced {
    pattern: glob::Pattern,
    /// `None` for `auto`.
    parser: Option<Choice>,
}

#[derive(Debug, Clone, Copy)]
enum Choice {
    Builtin(usize),
    Custom(usize),
}

/// How to parse the lines of one source within a batch.
#[derive(Debug, Clone, Copy)]
pub struct SourcePlan {
    forced: Option<Choice>,
    last: usize,
}

/// A parsed line and how it was parsed.
#[derive(Debug)]
pub struct Detected<'a> {
    /// What the parser found.
    pub parsed: Parsed<'a>,
    /// The format's name, for the event's `format`.
    pub format: &'static str,
    /// The line did not parse in its forced format, or looked like JSON but was not.
    pub parse_error: bool,
}

/// Picks and runs parsers.
#[derive(Clone)]
pub struct Detector {
    parsers: Arc<[Box<dyn Parser>]>,
    custom: Arc<[Box<dyn Parser>]>,
    forced: Arc<[Forced]>,
    last: HashMap<String, usize>,
    ctx: ParseContext,
}

/// A `[[parse.custom]]` definition.
#[derive(Debug, Clone)]
pub struct CustomFormat {
    /// Name used in `format` and in `[[parse.sources]]`.
    pub name: String,
    /// The pattern.
    pub pattern: CustomPattern,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("formats", &self.format_names())
            .field("forced", &self.forced.len())
            .field("remembered", &self.last.len())
            .finish()
    }
}

impl Detector {
    /// Builds a detector. `sources` are (glob over `source.path`, format name or `auto`).
    /// Errors name the offending entry.
    pub fn new(
        zone: Zone,
        sources: &[(String, String)],
        custom: &[CustomFormat],
    ) -> Result<Detector, String> {
        let parsers = builtin();
        let mut customs: Vec<Box<dyn Parser>> = Vec::new();
        for (i, c) in custom.iter().enumerate() {
            if parsers.iter().any(|p| p.name() == c.name)
                || custom[..i].iter().any(|o| o.name == c.name)
            {
                return Err(format!(
                    "parse.custom[{i}].name: `{}` is already a format name",
                    c.name
                ));
            }
            let p = CustomParser::new(&c.name, c.pattern.clone())
                .map_err(|e| format!("parse.custom[{i}]: {e}"))?;
            customs.push(Box::new(p));
        }
        let mut forced = Vec::new();
        for (i, (glob_text, format)) in sources.iter().enumerate() {
            let pattern = glob::Pattern::new(glob_text)
                .map_err(|e| format!("parse.sources[{i}].path: bad glob `{glob_text}`: {e}"))?;
            let parser = if format == "auto" {
                None
            } else if let Some(j) = parsers.iter().position(|p| p.name() == format) {
                Some(Choice::Builtin(j))
            } else if let Some(j) = customs.iter().position(|p| p.name() == format) {
                Some(Choice::Custom(j))
            } else {
                let mut names: Vec<&str> = parsers
                    .iter()
                    .chain(customs.iter())
                    .map(|p| p.name())
                    .collect();
                names.push("auto");
                return Err(format!(
                    "parse.sources[{i}].format: unknown format `{format}` (known: {})",
                    names.join(", ")
                ));
            };
            forced.push(Forced { pattern, parser });
        }
        Ok(Detector {
            parsers: parsers.into(),
            custom: customs.into(),
            forced: forced.into(),
            last: HashMap::new(),
            ctx: ParseContext {
                zone,
                now: Timestamp::now(),
            },
        })
    }

    /// Sets "now" for formats without a year; call once per round of batches.
    pub fn set_now(&mut self, now: Timestamp) {
        self.ctx.now = now;
    }

    /// Names of every format this detector can produce.
    pub fn format_names(&self) -> Vec<&'static str> {
        self.parsers
            .iter()
            .chain(self.custom.iter())
            .map(|p| p.name())
            .collect()
    }

    /// The plan for the lines of the source at `path`.
    pub fn plan(&self, path: &str) -> SourcePlan {
        let forced = self
            .forced
            .iter()
            .find(|f| f.pattern.matches(path))
            .and_then(|f| f.parser);
        SourcePlan {
            forced,
            last: self.last.get(path).copied().unwrap_or(0),
        }
    }

    /// Remembers which format the source's lines had, for its next batch.
    pub fn remember(&mut self, path: &str, plan: &SourcePlan) {
        if plan.forced.is_some() {
            return;
        }
        if let Some(v) = self.last.get_mut(path) {
            *v = plan.last;
            return;
        }
        if self.last.len() >= MAX_REMEMBERED {
            self.last.clear();
        }
        self.last.insert(path.to_owned(), plan.last);
    }

    /// Parses one line following `plan` (and updates the plan's memory).
    pub fn detect<'a>(&self, plan: &mut SourcePlan, line: &'a str) -> Detected<'a> {
        if let Some(choice) = plan.forced {
            let parser = match choice {
                Choice::Builtin(i) => &self.parsers[i],
                Choice::Custom(i) => &self.custom[i],
            };
            if let Some(mut parsed) = parser.parse(line, &self.ctx) {
                trim_message(&mut parsed);
                return Detected {
                    parsed,
                    format: parser.name(),
                    parse_error: false,
                };
            }
            return self.fallback(line, true);
        }
        // The fast path never sticks to plain text (the last parser): it matches every line,
        // so a source would stay plain after one odd line.
        let catch_all = self.parsers.len().saturating_sub(1);
        if plan.last != catch_all {
            if let Some(p) = self.parsers.get(plan.last) {
                if let Some(parsed) = p.parse(line, &self.ctx) {
                    return self.auto(line, parsed, p.name());
                }
            }
        }
        for (i, p) in self.parsers.iter().enumerate() {
            // The remembered parser was tried above, unless it is plain text, which must
            // still be reached here (through `auto`, like any other match).
            if i == plan.last && i != catch_all {
                continue;
            }
            if let Some(parsed) = p.parse(line, &self.ctx) {
                plan.last = i;
                return self.auto(line, parsed, p.name());
            }
        }
        // Unreachable with the built-in list (plain always matches), kept for safety.
        self.fallback(line, false)
    }

    fn auto<'a>(
        &self,
        line: &'a str,
        mut parsed: Parsed<'a>,
        format: &'static str,
    ) -> Detected<'a> {
        let looks_json = looks_like_json(line);
        trim_message(&mut parsed);
        if parsed.level.is_none() {
            parsed.level = leading_level(&parsed.message);
        }
        Detected {
            parsed,
            format,
            parse_error: looks_json && format != "json",
        }
    }

    fn fallback<'a>(&self, line: &'a str, parse_error: bool) -> Detected<'a> {
        let plain = super::plain::PlainParser;
        let parsed = plain.parse(line, &self.ctx).unwrap_or_else(|| Parsed {
            message: line.into(),
            ..Parsed::default()
        });
        Detected {
            parsed,
            format: "plain",
            parse_error,
        }
    }
}

/// A level in the first tokens of a message, in a form prose does not produce (bracketed,
/// capitals, or `word:` where a message starts); the plain-text parser's scan. Used when
/// the format itself carries no level (e.g. RFC 3164 syslog without a priority).
fn leading_level(message: &str) -> Option<logferry_shared::event::Level> {
    super::plain::scan_level(message, 0)
}

/// True if `line`, trimmed, starts with `{` and ends with `}`. Most lines start and end
/// with a byte that is neither white space nor part of a longer character: then the
/// trimmed ends are those bytes and the trim itself is skipped.
fn looks_like_json(line: &str) -> bool {
    let plain_end = |c: u8| c.is_ascii() && !char::from(c).is_whitespace();
    match line.as_bytes() {
        [first, .., last] if plain_end(*first) && plain_end(*last) => {
            *first == b'{' && *last == b'}'
        }
        _ => {
            let t = line.trim();
            t.starts_with('{') && t.ends_with('}')
        }
    }
}

/// Trailing blanks are not part of a message (some producers pad lines).
fn trim_message(parsed: &mut Parsed<'_>) {
    let trimmed = parsed.message.trim_end().len();
    if trimmed < parsed.message.len() {
        match &mut parsed.message {
            std::borrow::Cow::Borrowed(s) => *s = &s[..trimmed],
            std::borrow::Cow::Owned(s) => s.truncate(trimmed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logferry_shared::event::Level;

    proptest::proptest! {
        #[test]
        fn looks_like_json_as_the_trimmed_line(
            s in "[ \\t\\n\\r\\x0b\\x0c\\u{85}\\u{a0}\\u{2028}\\u{3000}]{0,2}[{}a \\u{e9}]{0,4}[ \\t\\n\\r\\x0b\\x0c\\u{85}\\u{a0}\\u{2028}]{0,2}|\\PC{0,8}",
        ) {
            let t = s.trim();
            proptest::prop_assert_eq!(
                looks_like_json(&s),
                t.starts_with('{') && t.ends_with('}'),
                "{:?}",
                s
            );
        }
    }

    #[test]
    fn leading_level_needs_a_marker() {
        assert_eq!(
            leading_level("error: Received disconnect"),
            Some(Level::Error)
        );
        assert_eq!(leading_level("[WARN] low disk"), Some(Level::Warn));
        assert_eq!(
            leading_level("[HID] [ATC] [Error] AppleDeviceManagement failed"),
            Some(Level::Error)
        );
        assert_eq!(leading_level("ERROR something"), Some(Level::Error));
        assert_eq!(leading_level("info about the weather"), None);
        assert_eq!(leading_level("I think so"), None);
        assert_eq!(leading_level("Error handling improved"), None);
        assert_eq!(leading_level(""), None);
    }

    proptest::proptest! {
        #[test]
        fn any_line_yields_an_event(line in ".{0,300}", prev in ".{0,100}") {
            let d = Detector::new(Zone::Utc, &[], &[]).expect("detector");
            let mut plan = d.plan("/x.log");
            let _ = d.detect(&mut plan, &prev);
            let got = d.detect(&mut plan, &line);
            proptest::prop_assert!(!got.format.is_empty());
            proptest::prop_assert!(got.parsed.message.len() <= line.len());
        }
    }

    /// Found by the `parse_line` fuzz check: once a source's last line was plain text,
    /// the next plain line skipped the plain parser and took the fallback, so a broken
    /// JSON line was not flagged `parse_error`, trailing blanks stayed and no leading level
    /// was read.
    #[test]
    fn plain_lines_after_plain_lines_are_read_the_same() {
        let d = Detector::new(Zone::Utc, &[], &[]).expect("detector");
        for line in [
            r#"{"msg":"cut here}"#,
            "[WARN] disk full   ",
            "error: no route",
        ] {
            let fresh = d.detect(&mut d.plan("/y.log"), line);
            let mut plan = d.plan("/x.log");
            assert_eq!(d.detect(&mut plan, "just words").format, "plain");
            let after_plain = d.detect(&mut plan, line);
            assert_eq!(after_plain.format, "plain");
            assert_eq!(after_plain.parse_error, fresh.parse_error, "{line}");
            assert_eq!(after_plain.parsed, fresh.parsed, "{line}");
        }
        let mut plan = d.plan("/x.log");
        d.detect(&mut plan, "just words");
        let broken = d.detect(&mut plan, r#"{"msg":"cut here}"#);
        assert!(broken.parse_error);
        let padded = d.detect(&mut plan, "[WARN] disk full   ");
        assert_eq!(padded.parsed.message.trim_end(), padded.parsed.message);
        assert_eq!(padded.parsed.level, Some(Level::Warn));
    }

    #[test]
    fn one_plain_line_does_not_make_a_source_plain() {
        let d = Detector::new(Zone::Utc, &[], &[]).expect("detector");
        let mut plan = d.plan("/x.log");
        assert_eq!(d.detect(&mut plan, "just words").format, "plain");
        assert_eq!(
            d.detect(&mut plan, r#"{"msg":"hi","level":"info"}"#).format,
            "json"
        );
        assert_eq!(d.detect(&mut plan, r#"{"msg":"again"}"#).format, "json");
    }
}
