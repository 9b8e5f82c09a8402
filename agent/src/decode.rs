//! A file's way from physical lines to events: container decoding
//! ([`crate::container`]), then multi-line joining ([`crate::multiline`]), as its input
//! configures them.
//!
//! Offsets: every event carries the end offset of its last physical line, in order; what
//! either stage holds lies after the last event's end, so the tailer checkpoints "just
//! past the last event it batched" and a crash re-reads whatever was held.

use std::time::{Duration, Instant};

use crate::config::InputConfig;
use crate::container::{ContainerDecoder, DecodeStats, Entry, Format};
use crate::lines::Line;
use crate::multiline::Multiline;

/// What an input's files are decoded with; [`DecodePlan::start`] makes one [`Decode`] per
/// file.
pub struct DecodePlan {
    format: Format,
    multiline: Option<Multiline>,
    max_bytes: usize,
    partial_timeout: Duration,
}

impl DecodePlan {
    /// The plan for `input`; `max_bytes` bounds a joined event, `partial_timeout` how long
    /// a container line's pieces wait for their last piece.
    pub fn new(input: &InputConfig, max_bytes: usize, partial_timeout: Duration) -> DecodePlan {
        let multiline = input.multiline.as_ref().and_then(|m| match m.build(max_bytes) {
            Ok(m) => Some(m),
            Err(e) => {
                // Refused by config validation before it gets here.
                tracing::error!(error = %e, "multiline settings are invalid; lines are sent one by one");
                None
            }
        });
        DecodePlan {
            format: input.format,
            multiline,
            max_bytes,
            partial_timeout,
        }
    }

    /// A fresh decoder for one file.
    pub fn start(&self) -> Decode {
        Decode {
            container: ContainerDecoder::new(self.format, self.max_bytes, self.partial_timeout),
            multiline: self.multiline.as_ref().map(Multiline::fresh),
        }
    }
}

/// One file's decoder state.
pub struct Decode {
    container: ContainerDecoder,
    multiline: Option<Multiline>,
}

impl Decode {
    /// Feeds one physical line ending at `end_offset`; `out` gets each completed event.
    pub fn push<F>(&mut self, line: Line<'_>, end_offset: u64, now: Instant, out: &mut F)
    where
        F: FnMut(Entry<'_>),
    {
        match &mut self.multiline {
            Some(m) => self
                .container
                .push(line, end_offset, now, &mut |e| m.push(e, now, out)),
            None => self.container.push(line, end_offset, now, out),
        }
    }

    /// Emits what waited past its timeout.
    pub fn flush_due<F>(&mut self, now: Instant, out: &mut F)
    where
        F: FnMut(Entry<'_>),
    {
        match &mut self.multiline {
            Some(m) => {
                self.container.flush_due(now, &mut |e| m.push(e, now, out));
                m.flush_due(now, out);
            }
            None => self.container.flush_due(now, out),
        }
    }

    /// Emits everything held (the file is let go).
    pub fn take_pending<F>(&mut self, out: &mut F)
    where
        F: FnMut(Entry<'_>),
    {
        let now = Instant::now();
        match &mut self.multiline {
            Some(m) => {
                self.container.take_pending(&mut |e| m.push(e, now, out));
                m.take_pending(out);
            }
            None => self.container.take_pending(out),
        }
    }

    /// True while either stage holds lines.
    pub fn is_holding(&self) -> bool {
        self.container.is_holding() || self.multiline.as_ref().is_some_and(Multiline::is_holding)
    }

    /// Forgets what is held (the file was truncated, or the lines will be read again).
    pub fn reset(&mut self) {
        self.container.reset();
        if let Some(m) = &mut self.multiline {
            m.reset();
        }
    }

    /// Counts since the last call.
    pub fn take_stats(&mut self) -> DecodeStats {
        self.container.take_stats()
    }
}
