//! The pure part of the CloudWatch Logs sink: turns events (already given their log group,
//! log stream, timestamp and message) into `PutLogEvents` requests that CloudWatch accepts.
//! No I/O here, so every limit is unit-tested.
//!
//! Limits of `PutLogEvents` (API reference, "PutLogEvents"), none of which the SDK checks:
//!
//! - a request holds at most [`MAX_REQUEST_BYTES`] bytes, counted as the UTF-8 bytes of
//!   the messages plus [`EVENT_OVERHEAD`] bytes per event, and at most
//!   [`MAX_REQUEST_EVENTS`] events, all in one log stream;
//! - its events are in chronological order and span less than [`MAX_SPAN_MS`];
//! - one event's message is at most [`MAX_EVENT_BYTES`];
//! - events more than 14 days old (or older than the log group's retention) or more than 2
//!   hours in the future are refused; [`TimeWindow`] keeps a safety margin of
//!   [`SAFETY_MARGIN_MS`] inside both edges, so an event accepted here is still acceptable
//!   when the request reaches the service.

use std::collections::HashMap;

/// Most bytes in one `PutLogEvents` request: "The maximum batch size is 1,048,576 bytes.
/// This size is calculated as the sum of all event messages in UTF-8, plus 26 bytes for
/// each log event" (API reference, PutLogEvents).
pub const MAX_REQUEST_BYTES: usize = 1_048_576;

/// Bytes counted per event on top of its message (see [`MAX_REQUEST_BYTES`]).
pub const EVENT_OVERHEAD: usize = 26;

/// Most events in one request: "The maximum number of log events in a batch is 10,000".
pub const MAX_REQUEST_EVENTS: usize = 10_000;

/// Most bytes of one event's message. The API reference (PutLogEvents and `InputLogEvent`,
/// SDK 1.162) says "Each log event can be no larger than 1 MB" (it was 256 KB before
/// 2025); as one event must also fit in a request of [`MAX_REQUEST_BYTES`] with its
/// [`EVENT_OVERHEAD`], the largest message that can be sent is 1,048,576 - 26 bytes.
pub const MAX_EVENT_BYTES: usize = MAX_REQUEST_BYTES - EVENT_OVERHEAD;

/// A request's events span less than this: "A batch of log events in a single request
/// cannot span more than 24 hours". A request is cut when the span would reach 24 hours
/// exactly, so the edge case is never left to the service.
pub const MAX_SPAN_MS: i64 = 24 * 3600 * 1000;

/// How far in the past CloudWatch accepts events at most (14 days).
pub const MAX_AGE_MS: i64 = 14 * 24 * 3600 * 1000;

/// How far in the future CloudWatch accepts events at most (2 hours).
pub const MAX_FUTURE_MS: i64 = 2 * 3600 * 1000;

/// Kept inside both edges of the accepted time range, for the time a request takes to
/// reach the service (and a retry after a backoff plans again with a fresh clock).
pub const SAFETY_MARGIN_MS: i64 = 60 * 1000;

/// Longest log group or log stream name, in bytes (CloudWatch counts characters; bytes
/// are never more).
pub const MAX_NAME_BYTES: usize = 512;

/// What to do with an event whose message is over [`MAX_EVENT_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Oversize {
    /// Keep the first [`MAX_EVENT_BYTES`] (cut on a character boundary): counted as
    /// `truncated`.
    #[default]
    Truncate,
    /// Send it as several consecutive CloudWatch events with the same timestamp, each at
    /// most [`MAX_EVENT_BYTES`] (cut on character boundaries): counted as `split`.
    Split,
}

/// What to do with an event whose timestamp CloudWatch would refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutOfRange {
    /// Do not send it: the event is rejected (it goes to the dead-letter store) and
    /// counted as `too_old` or `too_new`.
    #[default]
    Drop,
    /// Send it with the nearest timestamp CloudWatch accepts: a too-old event gets the
    /// oldest accepted time, a too-new one the current time. The message keeps the
    /// event's own `timestamp`. Counted as `clamped`.
    Clamp,
}

/// The time range CloudWatch accepts, relative to now, with [`SAFETY_MARGIN_MS`] taken off
/// both ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    /// Events older than this many ms are out of range.
    pub max_age_ms: i64,
    /// Events more than this many ms ahead of now are out of range.
    pub max_future_ms: i64,
}

impl TimeWindow {
    /// The window for a log group that keeps events `retention_days` (none: forever):
    /// the shorter of 14 days and the retention, and 2 hours ahead, both less the margin.
    pub fn new(retention_days: Option<u32>) -> TimeWindow {
        let retention = retention_days.map_or(i64::MAX, |d| i64::from(d) * 24 * 3600 * 1000);
        TimeWindow {
            max_age_ms: MAX_AGE_MS.min(retention) - SAFETY_MARGIN_MS,
            max_future_ms: MAX_FUTURE_MS - SAFETY_MARGIN_MS,
        }
    }
}

/// How events are fitted into requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Over-long messages.
    pub oversize: Oversize,
    /// Events too old for the window.
    pub too_old: OutOfRange,
    /// Events too far in the future.
    pub too_new: OutOfRange,
    /// The accepted time range.
    pub window: TimeWindow,
}

/// One event to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventIn {
    /// Index of the event in the batch the sink was handed.
    pub index: usize,
    /// Its log group (already sanitised: [`group_name`]).
    pub group: String,
    /// Its log stream (already sanitised: [`stream_name`]).
    pub stream: String,
    /// Its time, ms since the epoch.
    pub timestamp: i64,
    /// The CloudWatch message (the event's JSON line).
    pub message: String,
    /// Pieces of a split event already delivered by an earlier attempt: they are not sent
    /// again (0 for any other event).
    pub skip_pieces: usize,
}

/// One CloudWatch event of a request: all or part of one input event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// [`EventIn::index`] of the event it comes from.
    pub index: usize,
    /// Which piece of that event (0 unless split).
    pub part: usize,
    /// Timestamp sent (clamped if the policy said so).
    pub timestamp: i64,
    /// Message sent.
    pub message: String,
}

impl Piece {
    /// Bytes it counts for in a request.
    pub fn cost(&self) -> usize {
        self.message.len() + EVENT_OVERHEAD
    }
}

/// The requests for one log stream, in the order to send them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPlan {
    /// Log group.
    pub group: String,
    /// Log stream.
    pub stream: String,
    /// Each request's events, sorted by timestamp.
    pub requests: Vec<Vec<Piece>>,
}

/// Events the batcher adjusted, by reason (the `reason` label of
/// `logferry_sink_adjusted_events_total`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Messages cut to [`MAX_EVENT_BYTES`].
    pub truncated: u64,
    /// Events sent as several pieces.
    pub split: u64,
    /// Events out of the window sent with a clamped timestamp.
    pub clamped: u64,
    /// Events dropped as too old.
    pub too_old: u64,
    /// Events dropped as too far in the future.
    pub too_new: u64,
}

/// What to do with a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Requests per stream, streams in the order of their first event.
    pub streams: Vec<StreamPlan>,
    /// Events not to send, with the reason (they are marked rejected).
    pub rejected: Vec<(usize, String)>,
    /// For every event that is sent, how many pieces it has in the plan.
    pub pieces: HashMap<usize, usize>,
    /// For every event sent changed, how (`truncated`, `split`, `clamped`): the sink counts
    /// them once the event is delivered, so a retried event is counted once.
    pub adjusted: HashMap<usize, Vec<&'static str>>,
    /// What was adjusted.
    pub counts: Counts,
}

/// Plans the requests for `events` at time `now_ms`: applies the time window and the size
/// policy, groups by (log group, log stream), sorts each stream's events by timestamp
/// (stably: equal timestamps keep their order, so split pieces stay in order) and cuts
/// them into requests within every limit.
pub fn plan(events: Vec<EventIn>, now_ms: i64, policy: &Policy) -> Plan {
    let mut out = Plan::default();
    let mut by_stream: HashMap<(String, String), usize> = HashMap::new();
    let mut pieces_of: Vec<Vec<Piece>> = Vec::new();
    for ev in events {
        let oldest = now_ms.saturating_sub(policy.window.max_age_ms);
        let newest = now_ms.saturating_add(policy.window.max_future_ms);
        let mut timestamp = ev.timestamp;
        if timestamp < oldest {
            match policy.too_old {
                OutOfRange::Drop => {
                    out.counts.too_old += 1;
                    out.rejected.push((
                        ev.index,
                        format!(
                            "timestamp {} is older than CloudWatch Logs accepts ({} days)",
                            ev.timestamp,
                            (policy.window.max_age_ms + SAFETY_MARGIN_MS) / 86_400_000
                        ),
                    ));
                    continue;
                }
                OutOfRange::Clamp => {
                    out.counts.clamped += 1;
                    out.adjusted.entry(ev.index).or_default().push("clamped");
                    timestamp = oldest;
                }
            }
        } else if timestamp > newest {
            match policy.too_new {
                OutOfRange::Drop => {
                    out.counts.too_new += 1;
                    out.rejected.push((
                        ev.index,
                        format!(
                            "timestamp {} is more than 2 hours in the future for CloudWatch Logs",
                            ev.timestamp
                        ),
                    ));
                    continue;
                }
                OutOfRange::Clamp => {
                    out.counts.clamped += 1;
                    out.adjusted.entry(ev.index).or_default().push("clamped");
                    timestamp = now_ms;
                }
            }
        }
        let messages: Vec<String> = if ev.message.len() <= MAX_EVENT_BYTES {
            vec![ev.message]
        } else {
            match policy.oversize {
                Oversize::Truncate => {
                    out.counts.truncated += 1;
                    out.adjusted.entry(ev.index).or_default().push("truncated");
                    let mut m = ev.message;
                    m.truncate(floor_char_boundary(&m, MAX_EVENT_BYTES));
                    vec![m]
                }
                Oversize::Split => {
                    out.counts.split += 1;
                    out.adjusted.entry(ev.index).or_default().push("split");
                    split_message(&ev.message, MAX_EVENT_BYTES)
                }
            }
        };
        let slot = *by_stream
            .entry((ev.group.clone(), ev.stream.clone()))
            .or_insert_with(|| {
                out.streams.push(StreamPlan {
                    group: ev.group,
                    stream: ev.stream,
                    requests: Vec::new(),
                });
                pieces_of.push(Vec::new());
                pieces_of.len() - 1
            });
        let mut sent = 0;
        for (part, message) in messages.into_iter().enumerate().skip(ev.skip_pieces) {
            sent += 1;
            pieces_of[slot].push(Piece {
                index: ev.index,
                part,
                timestamp,
                message,
            });
        }
        out.pieces.insert(ev.index, sent);
    }
    for (stream, pieces) in out.streams.iter_mut().zip(pieces_of) {
        stream.requests = cut(pieces);
    }
    out
}

/// Sorts `pieces` by timestamp (stably) and cuts them into requests within
/// [`MAX_REQUEST_EVENTS`], [`MAX_REQUEST_BYTES`] and [`MAX_SPAN_MS`]. Every piece must be
/// at most [`MAX_EVENT_BYTES`].
pub fn cut(mut pieces: Vec<Piece>) -> Vec<Vec<Piece>> {
    pieces.sort_by_key(|p| p.timestamp);
    let mut requests = Vec::new();
    let mut current: Vec<Piece> = Vec::new();
    let mut bytes = 0;
    for piece in pieces {
        let full = match current.first() {
            None => false,
            Some(first) => {
                current.len() >= MAX_REQUEST_EVENTS
                    || bytes + piece.cost() > MAX_REQUEST_BYTES
                    || piece.timestamp - first.timestamp >= MAX_SPAN_MS
            }
        };
        if full {
            requests.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += piece.cost();
        current.push(piece);
    }
    if !current.is_empty() {
        requests.push(current);
    }
    requests
}

/// The largest index `<= at` that is a character boundary of `s`.
fn floor_char_boundary(s: &str, at: usize) -> usize {
    if at >= s.len() {
        return s.len();
    }
    let mut i = at;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// `s` cut into pieces of at most `max` bytes (`max` >= 4), each ending on a character
/// boundary; concatenated they are `s`.
pub fn split_message(s: &str, max: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let at = floor_char_boundary(rest, max.max(4));
        pieces.push(rest[..at].to_owned());
        rest = &rest[at..];
    }
    if pieces.is_empty() {
        pieces.push(String::new());
    }
    pieces
}

/// A valid log group name for `rendered`: characters other than `a-z A-Z 0-9 _ - / . #`
/// become `_`, a name starting with the reserved `aws/` gets a `_` in front, an empty name
/// becomes `unknown`, and the name is cut to [`MAX_NAME_BYTES`].
pub fn group_name(rendered: &str) -> String {
    let mut name: String = rendered
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/' | '.' | '#') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.starts_with("aws/") {
        name.insert(0, '_');
    }
    finish_name(name)
}

/// A valid log stream name for `rendered`: `:` and `*` (not allowed) and control
/// characters become `_`, an empty name becomes `unknown`, and the name is cut to
/// [`MAX_NAME_BYTES`] on a character boundary.
pub fn stream_name(rendered: &str) -> String {
    let name: String = rendered
        .chars()
        .map(|c| {
            if c == ':' || c == '*' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    finish_name(name)
}

fn finish_name(mut name: String) -> String {
    if name.is_empty() {
        return super::super::template::MISSING.to_owned();
    }
    name.truncate(floor_char_boundary(&name, MAX_NAME_BYTES));
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_341_600_000;

    fn policy() -> Policy {
        Policy {
            oversize: Oversize::Truncate,
            too_old: OutOfRange::Drop,
            too_new: OutOfRange::Drop,
            window: TimeWindow::new(None),
        }
    }

    fn ev(index: usize, timestamp: i64, message: &str) -> EventIn {
        EventIn {
            index,
            group: "g".into(),
            stream: "s".into(),
            timestamp,
            message: message.into(),
            skip_pieces: 0,
        }
    }

    fn piece(index: usize, timestamp: i64, len: usize) -> Piece {
        Piece {
            index,
            part: 0,
            timestamp,
            message: "x".repeat(len),
        }
    }

    fn indices(request: &[Piece]) -> Vec<usize> {
        request.iter().map(|p| p.index).collect()
    }

    #[test]
    fn request_bytes_exactly_at_the_limit_fit_one_more_byte_does_not() {
        // Four events whose messages plus overhead add up to exactly 1,048,576.
        let each = MAX_REQUEST_BYTES / 4 - EVENT_OVERHEAD;
        let pieces: Vec<Piece> = (0..4).map(|i| piece(i, NOW, each)).collect();
        assert_eq!(
            pieces.iter().map(Piece::cost).sum::<usize>(),
            MAX_REQUEST_BYTES
        );
        let requests = cut(pieces.clone());
        assert_eq!(requests.len(), 1);

        let mut over = pieces;
        over[3].message.push('x');
        let requests = cut(over);
        assert_eq!(requests.len(), 2);
        assert_eq!(indices(&requests[0]), [0, 1, 2]);
        assert_eq!(indices(&requests[1]), [3]);
        for r in &requests {
            assert!(r.iter().map(Piece::cost).sum::<usize>() <= MAX_REQUEST_BYTES);
        }
    }

    #[test]
    fn ten_thousand_events_fit_one_request_ten_thousand_and_one_do_not() {
        let pieces: Vec<Piece> = (0..MAX_REQUEST_EVENTS).map(|i| piece(i, NOW, 5)).collect();
        assert_eq!(cut(pieces).len(), 1);
        let pieces: Vec<Piece> = (0..=MAX_REQUEST_EVENTS).map(|i| piece(i, NOW, 5)).collect();
        let requests = cut(pieces);
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0].len(), MAX_REQUEST_EVENTS);
        assert_eq!(indices(&requests[1]), [MAX_REQUEST_EVENTS]);
    }

    #[test]
    fn a_request_spans_less_than_24_hours() {
        // Span of 24 h less 1 ms: one request.
        let requests = cut(vec![piece(0, NOW, 1), piece(1, NOW + MAX_SPAN_MS - 1, 1)]);
        assert_eq!(requests.len(), 1);
        // Exactly 24 h: cut.
        let requests = cut(vec![piece(0, NOW, 1), piece(1, NOW + MAX_SPAN_MS, 1)]);
        assert_eq!(requests.len(), 2);
        // Three days of events, one per 6 hours: each request under 24 h, all there.
        let pieces: Vec<Piece> = (0..12)
            .map(|i| piece(i, NOW + i as i64 * 6 * 3600 * 1000, 1))
            .collect();
        let requests = cut(pieces);
        assert_eq!(requests.len(), 3);
        for r in &requests {
            let span = r.last().unwrap().timestamp - r[0].timestamp;
            assert!(span < MAX_SPAN_MS, "span {span}");
        }
        let all: Vec<usize> = requests.iter().flat_map(|r| indices(r)).collect();
        assert_eq!(all, (0..12).collect::<Vec<_>>());
    }

    #[test]
    fn sorts_by_timestamp_keeping_arrival_order_for_ties() {
        let requests = cut(vec![
            piece(0, NOW + 30, 1),
            piece(1, NOW + 10, 1),
            piece(2, NOW + 20, 1),
            piece(3, NOW + 10, 1),
            piece(4, NOW + 30, 1),
            piece(5, NOW, 1),
        ]);
        assert_eq!(requests.len(), 1);
        assert_eq!(indices(&requests[0]), [5, 1, 3, 2, 0, 4]);
    }

    #[test]
    fn groups_by_group_and_stream_in_order_of_first_event() {
        let mut events = vec![ev(0, NOW, "a"), ev(1, NOW, "b"), ev(2, NOW, "c")];
        events[1].stream = "other".into();
        events.push(EventIn {
            group: "g2".into(),
            ..ev(3, NOW, "d")
        });
        let plan = plan(events, NOW, &policy());
        let names: Vec<(&str, &str)> = plan
            .streams
            .iter()
            .map(|s| (s.group.as_str(), s.stream.as_str()))
            .collect();
        assert_eq!(names, [("g", "s"), ("g", "other"), ("g2", "s")]);
        assert_eq!(indices(&plan.streams[0].requests[0]), [0, 2]);
        assert_eq!(indices(&plan.streams[1].requests[0]), [1]);
        assert_eq!(indices(&plan.streams[2].requests[0]), [3]);
    }

    #[test]
    fn event_exactly_at_the_size_limit_is_kept_one_byte_over_is_truncated() {
        let at = "y".repeat(MAX_EVENT_BYTES);
        let plan_at = plan(vec![ev(0, NOW, &at)], NOW, &policy());
        assert_eq!(plan_at.counts, Counts::default());
        assert_eq!(plan_at.streams[0].requests[0][0].message, at);

        let over = "y".repeat(MAX_EVENT_BYTES + 1);
        let p = plan(vec![ev(0, NOW, &over)], NOW, &policy());
        assert_eq!(p.counts.truncated, 1);
        assert_eq!(p.streams[0].requests[0][0].message.len(), MAX_EVENT_BYTES);
        // An event at the limit makes a request of exactly MAX_REQUEST_BYTES.
        assert_eq!(p.streams[0].requests[0][0].cost(), MAX_REQUEST_BYTES);
    }

    #[test]
    fn truncation_cuts_on_a_character_boundary() {
        // "é" is 2 bytes, "€" 3, "😀" 4: put each across the limit.
        for (c, len) in [("é", 2), ("€", 3), ("😀", 4)] {
            for shift in 1..len {
                let mut m = "a".repeat(MAX_EVENT_BYTES - shift);
                m.push_str(c);
                m.push_str("tail");
                let p = plan(vec![ev(0, NOW, &m)], NOW, &policy());
                let sent = &p.streams[0].requests[0][0].message;
                assert_eq!(sent.len(), MAX_EVENT_BYTES - shift, "{c} shifted {shift}");
                assert!(m.starts_with(sent.as_str()));
                assert_eq!(p.counts.truncated, 1);
            }
        }
    }

    #[test]
    fn split_pieces_stay_in_order_and_make_up_the_message() {
        let policy = Policy {
            oversize: Oversize::Split,
            ..policy()
        };
        // 2.5 events' worth with a 4-byte character straddling the first cut.
        let mut m = "a".repeat(MAX_EVENT_BYTES - 2);
        m.push('😀');
        m.push_str(&"b".repeat(MAX_EVENT_BYTES + MAX_EVENT_BYTES / 2));
        let events = vec![ev(0, NOW, "before"), ev(1, NOW, &m), ev(2, NOW, "after")];
        let p = plan(events, NOW, &policy);
        assert_eq!(p.counts.split, 1);
        assert_eq!(p.pieces[&1], 3);
        let all: Vec<&Piece> = p.streams[0].requests.iter().flatten().collect();
        let order: Vec<(usize, usize)> = all.iter().map(|p| (p.index, p.part)).collect();
        assert_eq!(order, [(0, 0), (1, 0), (1, 1), (1, 2), (2, 0)]);
        let joined: String = all
            .iter()
            .filter(|p| p.index == 1)
            .map(|p| p.message.as_str())
            .collect();
        assert_eq!(joined, m);
        assert_eq!(all[1].message.len(), MAX_EVENT_BYTES - 2);
        for r in &p.streams[0].requests {
            assert!(r.iter().map(Piece::cost).sum::<usize>() <= MAX_REQUEST_BYTES);
        }
        // A retry after the first two pieces were delivered sends only the third.
        let retry = EventIn {
            skip_pieces: 2,
            ..ev(1, NOW, &m)
        };
        let p = plan(vec![retry], NOW, &policy);
        let all: Vec<&Piece> = p.streams[0].requests.iter().flatten().collect();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].part, 2);
        assert_eq!(p.pieces[&1], 1);
    }

    #[test]
    fn split_message_handles_small_and_empty_inputs() {
        assert_eq!(split_message("", 10), [""]);
        assert_eq!(split_message("abc", 10), ["abc"]);
        assert_eq!(split_message("abcdefgh", 4), ["abcd", "efgh"]);
        assert_eq!(split_message("ab😀cd", 4), ["ab", "😀", "cd"]);
    }

    #[test]
    fn too_old_and_too_new_are_dropped_at_the_edge_plus_one() {
        let w = TimeWindow::new(None);
        assert_eq!(w.max_age_ms, MAX_AGE_MS - SAFETY_MARGIN_MS);
        assert_eq!(w.max_future_ms, MAX_FUTURE_MS - SAFETY_MARGIN_MS);
        let events = vec![
            ev(0, NOW - w.max_age_ms, "oldest kept"),
            ev(1, NOW - w.max_age_ms - 1, "too old"),
            ev(2, NOW + w.max_future_ms, "newest kept"),
            ev(3, NOW + w.max_future_ms + 1, "too new"),
        ];
        let p = plan(events, NOW, &policy());
        assert_eq!(p.counts.too_old, 1);
        assert_eq!(p.counts.too_new, 1);
        let rejected: Vec<usize> = p.rejected.iter().map(|r| r.0).collect();
        assert_eq!(rejected, [1, 3]);
        assert!(p.rejected[0].1.contains("older"), "{}", p.rejected[0].1);
        assert!(p.rejected[1].1.contains("future"), "{}", p.rejected[1].1);
        let sent: Vec<usize> = p.streams[0]
            .requests
            .iter()
            .flat_map(|r| indices(r))
            .collect();
        assert_eq!(sent, [0, 2]);
        assert!(!p.pieces.contains_key(&1));
    }

    #[test]
    fn retention_shortens_the_window() {
        let w = TimeWindow::new(Some(1));
        assert_eq!(w.max_age_ms, 86_400_000 - SAFETY_MARGIN_MS);
        let w = TimeWindow::new(Some(3653));
        assert_eq!(w.max_age_ms, MAX_AGE_MS - SAFETY_MARGIN_MS);
        let policy = Policy {
            window: TimeWindow::new(Some(1)),
            ..policy()
        };
        let p = plan(
            vec![ev(0, NOW - 2 * 86_400_000, "2 days old")],
            NOW,
            &policy,
        );
        assert_eq!(p.counts.too_old, 1);
        assert!(p.rejected[0].1.contains("(1 days)"), "{}", p.rejected[0].1);
    }

    #[test]
    fn clamping_moves_timestamps_into_the_window() {
        let policy = Policy {
            too_old: OutOfRange::Clamp,
            too_new: OutOfRange::Clamp,
            ..policy()
        };
        let w = policy.window;
        let events = vec![
            ev(0, NOW - MAX_AGE_MS * 3, "ancient"),
            ev(1, NOW + 86_400_000, "tomorrow"),
            ev(2, NOW, "now"),
        ];
        let p = plan(events, NOW, &policy);
        assert_eq!(p.counts.clamped, 2);
        assert!(p.rejected.is_empty());
        let sent: Vec<(usize, i64)> = p.streams[0]
            .requests
            .iter()
            .flatten()
            .map(|p| (p.index, p.timestamp))
            .collect();
        assert_eq!(sent, [(0, NOW - w.max_age_ms), (1, NOW), (2, NOW)]);
        // The message is untouched.
        assert_eq!(p.streams[0].requests[0][0].message, "ancient");
    }

    #[test]
    fn group_names_keep_only_allowed_characters() {
        assert_eq!(group_name("/logferry/shop"), "/logferry/shop");
        assert_eq!(group_name("a b:c*é#x.y-z_w"), "a_b_c__#x.y-z_w");
        assert_eq!(group_name(""), "unknown");
        assert_eq!(group_name("aws/lambda"), "_aws/lambda");
        let long = "g".repeat(MAX_NAME_BYTES + 1);
        assert_eq!(group_name(&long).len(), MAX_NAME_BYTES);
        assert_eq!(
            group_name(&"g".repeat(MAX_NAME_BYTES)).len(),
            MAX_NAME_BYTES
        );
    }

    #[test]
    fn stream_names_lose_colons_stars_and_control_characters() {
        assert_eq!(
            stream_name("node-1//var/log/app.log"),
            "node-1//var/log/app.log"
        );
        assert_eq!(stream_name("a:b*c\nd é"), "a_b_c_d é");
        assert_eq!(stream_name(""), "unknown");
        // Cut on a character boundary: 511 bytes then a 2-byte character.
        let mut long = "s".repeat(MAX_NAME_BYTES - 1);
        long.push('é');
        assert_eq!(stream_name(&long), "s".repeat(MAX_NAME_BYTES - 1));
    }
}
