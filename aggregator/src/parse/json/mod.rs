//! JSON lines: one JSON object per line, as written by pino, bunyan, zap, logrus, slog's
//! `JSONHandler`, Serilog, ECS loggers, Docker's `json-file` driver, python-json-logger,
//! GELF senders and most structured loggers.
//!
//! A line is claimed when, after leading and trailing JSON whitespace, it is exactly one
//! JSON object. Invalid JSON, anything that is not an object (arrays, strings, numbers),
//! and trailing text after the object give `None`. Nested values are skipped by
//! serde_json without recursion, so any depth is fine.
//!
//! # What is extracted
//!
//! Top-level keys are matched without regard to ASCII case. For each role the first key in
//! the list below that is present *and usable* wins (a `time` that is not a time leaves
//! `ts` a chance, and stays a field):
//!
//! | role | keys, in priority order | usable values |
//! |---|---|---|
//! | timestamp | `time`, `ts`, `timestamp`, `@timestamp`, `datetime`, `date`, `t`, `@t` (Serilog CLEF), `asctime` (python) | RFC 3339 / ISO string ([`time::rfc3339`], zoneless ones in [`ParseContext::zone`]); epoch number or numeric string in s/ms/µs/ns ([`time::epoch_int`], [`time::epoch`]), at least 10⁸ (1973) |
//! | level | `level`, `severity`, `lvl`, `log.level` (flat ECS key), `loglevel`, `levelname`, `severity_text`, `@l` (CLEF) | a level word ([`level::from_word`]); a bunyan/pino number, also as a string ([`level::from_number`]) |
//! | level | `log` holding an object with a `level` member (nested ECS, `{"log":{"level":"info"}}`); same rank as `log.level` | as above |
//! | message | `msg`, `message`, `log` (Docker), `text`, `event` (structlog), `@m`, `@mt` (CLEF), `RenderedMessage`, `MessageTemplate` (Serilog `JsonFormatter`), `short_message` (GELF) | a string |
//!
//! Special cases: a Serilog CLEF event (message from `@m`/`@mt`) without a level is `info`,
//! as CLEF omits `@l` for Information; a GELF event (message from `short_message`) reads an
//! integer `level` 0–7 as a syslog severity. A trailing `\n` / `\r\n` is cut from the
//! message (Docker's `json-file` keeps the newline in `log`).
//!
//! The keys that supplied timestamp, level and message are removed from the fields; for the
//! nested ECS form only the `level` member is removed from the `log` object (the field is
//! dropped if nothing else is left in it). **If no message key is found, the message is the
//! whole (trimmed) line and every key is kept as a field**, though timestamp and level are
//! still read.
//!
//! Every other top-level key becomes a field, in line order:
//!
//! | JSON | [`Value`] |
//! |---|---|
//! | string | `Str`, borrowed from the line when it has no escapes |
//! | integer fitting `i64` | `Int` |
//! | other number | `Float`; integers beyond `i64` and numbers that overflow `f64` stay exact as `Str` of their digits |
//! | `true` / `false` | `Bool` |
//! | `null` | `Null` |
//! | object / array | `Json`, the raw text borrowed from the line |
//!
//! Duplicate keys: the last value wins, at the position of the first occurrence.
//!
//! # Performance and design
//!
//! The target is well over a million ~200-byte lines per second per core. A serde_json
//! map visitor over `&RawValue`s (zero-copy, the first version of this parser) spent
//! about half its time in serde's per-token machinery, so the top level is scanned here
//! by [`scan_object`]: strings eight bytes at a time, numbers and literals by hand, with
//! exactly JSON's grammar. serde_json still does what it is best at: nested objects and
//! arrays are validated and skipped by it as one `&RawValue` (iteratively, so any depth is
//! fine), and strings with escapes are decoded by it. A differential property test checks
//! the scanner against serde_json on random and mutated objects: same verdict, same
//! members, same values.
//!
//! Role keys are found with a perfect hash ([`roles`]); duplicate keys are detected with
//! a 64-bit filter before any search ([`Fields`]). Keys and strings without escapes are
//! borrowed; per line there is one allocation (the field vector), none per field.
//! Measured in an optimised build on a shared machine: about 6,400 instructions and
//! ~1.4 M lines/s for a 210-byte, 9-key line (zap/slog style), ~1.6 M lines/s over the
//! corpus; other formats are refused in ~25 ns.
//!
//! # Not handled
//!
//! Dotted paths other than `log.level` (`{"event":{"created":...}}` is a plain `Json`
//! field), message templates (`@mt` is not rendered), multi-line JSON (one line, one
//! object), and JSON embedded after a text prefix (`2026-... {"a":1}`).
//!
//! The key lists ([`fields::TIME_KEYS`], [`fields::LEVEL_KEYS`], [`fields::MESSAGE_KEYS`]) and the `pub(crate)`
//! helpers here ([`roles`], [`timestamp_of`], [`level_of`], [`Fields`]) are shared with the
//! logfmt and syslog parsers.

mod scan;
#[cfg(test)]
mod tests;

use std::borrow::Cow;

use logferry_shared::event::Level;

use super::fields::{level_of, roles, timestamp_of, trim_bytes, trim_newline, Fields};
use super::{level, ParseContext, Parsed, Parser, Value, Zone};
use logferry_shared::event::Timestamp;

use scan::is_json_ws;
pub(crate) use scan::scan_object;

/// Parser for JSON-object lines. See the [module docs](self).
pub struct JsonParser;

/// Rank of the nested ECS `{"log":{"level":..}}`: that of `log.level`.
const ECS_LEVEL_RANK: u8 = 3;
/// Ranks of `@m` and `@mt` in [`MESSAGE_KEYS`] (Serilog CLEF: no level means info).
const CLEF_MESSAGE_RANKS: [u8; 2] = [5, 6];
/// Rank of `short_message` in [`MESSAGE_KEYS`] (GELF: `level` is a syslog severity).
const GELF_MESSAGE_RANK: u8 = 9;

impl Parser for JsonParser {
    fn name(&self) -> &'static str {
        "json"
    }

    fn parse<'a>(&self, line: &'a str, ctx: &ParseContext) -> Option<Parsed<'a>> {
        let body = trim_bytes(line, is_json_ws);
        // Cheap rejection of other formats before any scanning.
        if !(body.starts_with('{') && body.ends_with('}')) {
            return None;
        }
        let mut c = Collected {
            fields: Fields::with_capacity(16),
            time: None,
            level: None,
            message: None,
        };
        scan_object(body, |key, value, text| c.add(key, value, text, &ctx.zone))?;
        Some(c.finish(body))
    }
}

struct Pick<T> {
    rank: u8,
    idx: usize,
    val: T,
}

struct LevelPick {
    rank: u8,
    idx: usize,
    level: Level,
    /// For the nested ECS form: the `log` object without `level` (`None`: nothing left).
    ecs_rest: Option<Option<String>>,
}

/// Better (lower) rank, or the same key again (a duplicate: last wins).
fn takes<T>(current: &Option<Pick<T>>, rank: u8) -> bool {
    current.as_ref().is_none_or(|p| rank <= p.rank)
}

struct Collected<'a> {
    fields: Fields<'a>,
    time: Option<Pick<Timestamp>>,
    level: Option<LevelPick>,
    message: Option<Pick<()>>,
}

impl<'a> Collected<'a> {
    fn add(&mut self, key: Cow<'a, str>, value: Value<'a>, text: &'a str, zone: &Zone) {
        let (time_rank, level_rank, message_rank) = roles(&key);
        let (idx, replaced) = self.fields.put(key, value);
        if replaced {
            // The earlier value under this key is gone: forget any role it had.
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
        let value = &self.fields.list[idx].1;
        if let Some(r) = time_rank {
            if takes(&self.time, r) {
                if let Some(t) = timestamp_of(value, text, zone) {
                    self.time = Some(Pick {
                        rank: r,
                        idx,
                        val: t,
                    });
                }
            }
        }
        if let Some(r) = level_rank {
            if self.level.as_ref().is_none_or(|p| r <= p.rank) {
                if let Some(l) = level_of(value) {
                    self.level = Some(LevelPick {
                        rank: r,
                        idx,
                        level: l,
                        ecs_rest: None,
                    });
                }
            }
        }
        if let Some(r) = message_rank {
            match value {
                Value::Str(_) if takes(&self.message, r) => {
                    self.message = Some(Pick {
                        rank: r,
                        idx,
                        val: (),
                    });
                }
                Value::Json(raw)
                    if r == 2
                        && raw.starts_with('{')
                        && self.level.as_ref().is_none_or(|p| ECS_LEVEL_RANK <= p.rank) =>
                {
                    if let Some((l, rest)) = ecs_level(raw) {
                        self.level = Some(LevelPick {
                            rank: ECS_LEVEL_RANK,
                            idx,
                            level: l,
                            ecs_rest: Some(rest),
                        });
                    }
                }
                _ => {}
            }
        }
    }

    fn finish(self, body: &'a str) -> Parsed<'a> {
        let Collected {
            mut fields,
            time,
            mut level,
            message,
        } = self;
        let Some(message) = message else {
            // No message: the whole line is the message and every key stays a field.
            return Parsed {
                timestamp: time.map(|p| p.val),
                level: level.map(|p| p.level),
                message: Cow::Borrowed(body),
                fields: fields.list,
            };
        };
        if level.is_none() && CLEF_MESSAGE_RANKS.contains(&message.rank) {
            level = Some(LevelPick {
                rank: 0,
                idx: usize::MAX,
                level: Level::Info,
                ecs_rest: None,
            });
        }
        if message.rank == GELF_MESSAGE_RANK {
            // GELF's `level` is a syslog severity, which `from_number` does not read.
            if let Some(idx) = fields.list.iter().position(|(k, _)| k == "level") {
                if let Value::Int(sev @ 0..=7) = fields.list[idx].1 {
                    level = level::from_syslog_severity(sev as u8).map(|l| LevelPick {
                        rank: 0,
                        idx,
                        level: l,
                        ecs_rest: None,
                    });
                }
            }
        }
        let text = match std::mem::replace(&mut fields.list[message.idx].1, Value::Null) {
            Value::Str(s) => trim_newline(s),
            _ => Cow::Borrowed(""),
        };
        let mut remove = [message.idx, usize::MAX, usize::MAX];
        if let Some(t) = &time {
            remove[1] = t.idx;
        }
        let mut level_out = None;
        if let Some(l) = level {
            level_out = Some(l.level);
            match l.ecs_rest {
                None => remove[2] = l.idx,
                Some(None) => remove[2] = l.idx,
                Some(Some(rest)) => fields.list[l.idx].1 = Value::Json(Cow::Owned(rest)),
            }
        }
        Parsed {
            timestamp: time.map(|p| p.val),
            level: level_out,
            message: text,
            fields: fields.remove_all(&remove),
        }
    }
}

/// The nested ECS level: `{"level":"info", ...}` → the level and the object without it
/// (`None` when nothing else is in it).
fn ecs_level(raw: &str) -> Option<(Level, Option<String>)> {
    let mut entries = Vec::new();
    scan_object(raw, |k, v, text| entries.push((k, v, text)))?;
    let pos = entries.iter().position(|(k, _, _)| k == "level")?;
    let level = level_of(&entries[pos].1)?;
    if entries.len() == 1 {
        return Some((level, None));
    }
    let mut out = String::with_capacity(raw.len());
    out.push('{');
    for (i, (k, _, text)) in entries.iter().enumerate() {
        if i == pos {
            continue;
        }
        if out.len() > 1 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(k.as_ref()).ok()?);
        out.push(':');
        out.push_str(text);
    }
    out.push('}');
    Some((level, Some(out)))
}
