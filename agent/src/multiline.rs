//! Joining the physical lines of one event (a stack trace, a panic dump) into one line:
//! a pure core over the entries of one file, after [`crate::container`] decoding.
//!
//! What starts and continues an event comes from the config: a `start_pattern` (a
//! matching line starts an event, others continue it), a `continue_pattern` (a matching
//! line continues the event, others start one), or a preset for Java stack traces, Python
//! tracebacks or Go panics (see README). Joined lines are separated by `\n`. A line of
//! another stream (stdout/stderr) than the held event never joins it. Lines that no
//! preset rule can continue are passed on at once, borrowed, without being copied.
//!
//! Order and offsets: each entry carries `end_offset`, the file offset past its last
//! physical line; an event carries the `end_offset` of the last line in it, and events
//! come out in input order, so `end_offset` never decreases. What is held (the current
//! event and perhaps a blank line after it) lies after the last emitted `end_offset`:
//! checkpointing that offset re-reads what was held after a crash.
//!
//! Bounds: an event keeps at most `max_lines` lines and `max_bytes` bytes; past either, the
//! rest of the event is dropped (its offsets still counted) and the event is flagged
//! [`FLAG_TRUNCATED`]. An event is held at most `timeout` after its first line, when
//! [`Multiline::flush_due`] emits it; [`Multiline::take_pending`] emits it when the file
//! is let go.

mod rules;

#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use logferry_shared::wire::FLAG_TRUNCATED;
use regex::bytes::Regex;
use serde::Deserialize;

use crate::container::{Entry, Stream};
use rules::{Action, GoPhase, PyPhase, Rules};

/// Buffers grown past this by a long event are shrunk back once it is emitted.
const KEEP_CAPACITY: usize = 64 << 10;

/// Built-in rules for common multi-line events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Java stack traces: indented lines, `Caused by:`, and an exception header right
    /// after a log line continue the event.
    Java,
    /// Python tracebacks, chained exceptions included; other lines pass straight on.
    Python,
    /// Go panics and goroutine dumps; other lines pass straight on.
    Go,
}

/// `multiline` in an input's config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineConfig {
    /// Built-in rules.
    #[serde(default)]
    pub preset: Option<Preset>,
    /// Regex: a matching line starts a new event; other lines continue the current one.
    #[serde(default)]
    pub start_pattern: Option<String>,
    /// Regex: a matching line continues the previous event; other lines start one.
    #[serde(default)]
    pub continue_pattern: Option<String>,
    /// Most lines in one event; further lines of the event are dropped. Default 500.
    #[serde(default = "default_max_lines")]
    pub max_lines: usize,
    /// An event is sent this long after its first line at the latest. Default 1s.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_max_lines() -> usize {
    500
}

fn default_timeout() -> Duration {
    Duration::from_secs(1)
}

/// What is wrong with a [`MultilineConfig`].
#[derive(Debug, thiserror::Error)]
pub enum MultilineError {
    /// None or several of the ways to find events are set.
    #[error("set exactly one of `preset`, `start_pattern` or `continue_pattern`")]
    Mode,
    /// A pattern is not a valid regex.
    #[error("bad regex: {source}")]
    Regex {
        /// `start_pattern` or `continue_pattern`.
        key: &'static str,
        /// The regex error.
        #[source]
        source: Box<regex::Error>,
    },
    /// `max_lines` is 0.
    #[error("must be at least 1")]
    MaxLines,
    /// `timeout` is 0.
    #[error("must be above zero")]
    Timeout,
}

impl MultilineError {
    /// The config key at fault, under `multiline` (`None`: the table as a whole).
    pub fn key(&self) -> Option<&'static str> {
        match self {
            MultilineError::Mode => None,
            MultilineError::Regex { key, .. } => Some(key),
            MultilineError::MaxLines => Some("max_lines"),
            MultilineError::Timeout => Some("timeout"),
        }
    }
}

impl MultilineConfig {
    /// Checks the config (compiling its pattern).
    pub fn validate(&self) -> Result<(), MultilineError> {
        self.rules().map(drop)
    }

    /// The joiner for one file; `max_bytes` bounds an event (`tail.max_line_bytes`).
    /// To avoid compiling the pattern per file, build once and use [`Multiline::fresh`].
    pub fn build(&self, max_bytes: usize) -> Result<Multiline, MultilineError> {
        Ok(Multiline {
            rules: self.rules()?,
            max_lines: self.max_lines,
            max_bytes: max_bytes.max(1),
            timeout: self.timeout,
            held: Held::default(),
            blank: None,
        })
    }

    fn rules(&self) -> Result<Rules, MultilineError> {
        if self.max_lines == 0 {
            return Err(MultilineError::MaxLines);
        }
        if self.timeout.is_zero() {
            return Err(MultilineError::Timeout);
        }
        let compile = |key, pattern: &str| {
            Regex::new(pattern).map_err(|e| MultilineError::Regex {
                key,
                source: Box::new(e),
            })
        };
        match (self.preset, &self.start_pattern, &self.continue_pattern) {
            (Some(Preset::Java), None, None) => Ok(Rules::Java),
            (Some(Preset::Python), None, None) => Ok(Rules::Python(PyPhase::Idle)),
            (Some(Preset::Go), None, None) => Ok(Rules::Go(GoPhase::Idle)),
            (None, Some(p), None) => Ok(Rules::Start(compile("start_pattern", p)?)),
            (None, None, Some(p)) => Ok(Rules::Continue(compile("continue_pattern", p)?)),
            _ => Err(MultilineError::Mode),
        }
    }
}

/// The event being joined.
#[derive(Debug, Clone, Default)]
struct Held {
    /// Lines in it (0: nothing held).
    lines: usize,
    buf: Vec<u8>,
    /// Reached a bound: later lines are dropped.
    full: bool,
    flags: u8,
    time_ms: Option<u64>,
    stream: Option<Stream>,
    end_offset: u64,
    since: Option<Instant>,
}

/// A blank line after the held event that may yet belong to it.
#[derive(Debug, Clone, Copy)]
struct Blank {
    flags: u8,
    time_ms: Option<u64>,
    end_offset: u64,
}

/// Joins the lines of one file into events. See the module docs for order and bounds.
#[derive(Debug, Clone)]
pub struct Multiline {
    rules: Rules,
    max_lines: usize,
    max_bytes: usize,
    timeout: Duration,
    held: Held,
    blank: Option<Blank>,
}

impl Multiline {
    /// An empty joiner with the same rules (compiled patterns are shared), for another file.
    pub fn fresh(&self) -> Multiline {
        let mut rules = self.rules.clone();
        rules.reset();
        Multiline {
            rules,
            max_lines: self.max_lines,
            max_bytes: self.max_bytes,
            timeout: self.timeout,
            held: Held::default(),
            blank: None,
        }
    }

    /// Whether an event is held.
    pub fn is_holding(&self) -> bool {
        self.held.lines > 0
    }

    /// When [`Multiline::flush_due`] will next have something to emit.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.held
            .since
            .filter(|_| self.is_holding())
            .map(|t| t + self.timeout)
    }

    /// Forgets the held event (the file was truncated and is read again from the start).
    pub fn reset(&mut self) {
        self.held.lines = 0;
        self.held.buf.clear();
        self.blank = None;
        self.rules.reset();
    }

    /// Takes one line, calling `emit` for each event it completes (at most: the held
    /// event, a deferred blank line, and this line itself).
    pub fn push<F>(&mut self, line: Entry<'_>, now: Instant, emit: &mut F)
    where
        F: FnMut(Entry<'_>),
    {
        if self.is_holding() && self.held.stream != line.stream {
            self.flush(emit);
        }
        let mut action = self.rules.classify(line.bytes, self.held.lines);
        if action == Action::Restart {
            self.flush(emit);
            action = self.rules.classify(line.bytes, 0);
        }
        match action {
            Action::Start => {
                self.flush(emit);
                self.hold(line, now);
            }
            Action::Continue if self.is_holding() => {
                if let Some(b) = self.blank.take() {
                    self.append(b"", b.flags, b.end_offset);
                }
                self.append(line.bytes, line.flags, line.end_offset);
            }
            Action::Continue => self.hold(line, now),
            Action::Defer if self.is_holding() && self.blank.is_none() => {
                self.blank = Some(Blank {
                    flags: line.flags,
                    time_ms: line.time_ms,
                    end_offset: line.end_offset,
                });
            }
            Action::Single | Action::Defer | Action::Restart => {
                self.flush(emit);
                match line.bytes.get(..self.max_bytes) {
                    Some(cut) if cut.len() < line.bytes.len() => emit(Entry {
                        bytes: cut,
                        flags: line.flags | FLAG_TRUNCATED,
                        ..line
                    }),
                    _ => emit(line),
                }
            }
        }
    }

    /// Emits the held event if its first line came `timeout` ago or earlier.
    pub fn flush_due<F>(&mut self, now: Instant, emit: &mut F)
    where
        F: FnMut(Entry<'_>),
    {
        if self.next_deadline().is_some_and(|d| d <= now) {
            self.flush(emit);
        }
    }

    /// Emits the held event, for when the file is let go (or at shutdown).
    pub fn take_pending<F>(&mut self, emit: &mut F)
    where
        F: FnMut(Entry<'_>),
    {
        self.flush(emit);
    }

    fn flush<F>(&mut self, emit: &mut F)
    where
        F: FnMut(Entry<'_>),
    {
        // The rules' state needs no reset: with nothing held they start from scratch.
        if !self.is_holding() {
            return;
        }
        let h = &mut self.held;
        emit(Entry {
            bytes: &h.buf,
            flags: h.flags,
            time_ms: h.time_ms,
            stream: h.stream,
            end_offset: h.end_offset,
        });
        h.lines = 0;
        h.buf.clear();
        if h.buf.capacity() > KEEP_CAPACITY {
            h.buf = Vec::new();
        }
        if let Some(b) = self.blank.take() {
            emit(Entry {
                bytes: b"",
                flags: b.flags,
                time_ms: b.time_ms,
                stream: h.stream,
                end_offset: b.end_offset,
            });
        }
    }

    fn hold(&mut self, line: Entry<'_>, now: Instant) {
        let h = &mut self.held;
        h.buf.clear();
        let keep = line.bytes.len().min(self.max_bytes);
        h.buf.extend_from_slice(&line.bytes[..keep]);
        h.full = keep < line.bytes.len();
        h.flags = line.flags | if h.full { FLAG_TRUNCATED } else { 0 };
        h.lines = 1;
        h.time_ms = line.time_ms;
        h.stream = line.stream;
        h.end_offset = line.end_offset;
        h.since = Some(now);
    }

    fn append(&mut self, bytes: &[u8], flags: u8, end_offset: u64) {
        let h = &mut self.held;
        h.flags |= flags;
        h.end_offset = end_offset;
        if h.full || h.lines >= self.max_lines {
            h.full = true;
            h.flags |= FLAG_TRUNCATED;
            return;
        }
        h.lines += 1;
        let room = self.max_bytes.saturating_sub(h.buf.len());
        if 1 + bytes.len() > room {
            if room > 0 {
                h.buf.push(b'\n');
                h.buf.extend_from_slice(&bytes[..room - 1]);
            }
            h.full = true;
            h.flags |= FLAG_TRUNCATED;
        } else {
            h.buf.push(b'\n');
            h.buf.extend_from_slice(bytes);
        }
    }
}
