//! Traffic summaries: what the aggregator saw, per interval (default 10 s), for the
//! admin endpoint's `GET /api/stats`.
//!
//! Per interval: events by level, by source file, by host and by Kubernetes namespace;
//! for access logs (the `access` parser's `status`, `method` and `path` fields) the
//! requests per second, the top sections (first path segment) and the share of each
//! status class.
//!
//! Bounded: at most `keep` intervals are kept (default 360, one hour at 10 s); while an
//! interval is open each dimension tracks at most `max_keys` distinct values (default
//! 1,000) and counts further ones under `other`; a closed interval keeps only its
//! `top` values per dimension (default 10) plus an `other` count. Pure: the caller
//! passes the time, so tests need no clock.

mod batch;
mod counter;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use logferry_shared::event::{Level, Timestamp};
use serde::Serialize;

pub use batch::{BatchTally, SourceKeys};
pub use counter::{Count, TopCounter};

use crate::parse::Value;
use crate::rules::RuleEvent;

/// Settings of [`TrafficStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsSettings {
    /// Interval length (at least 1 s).
    pub interval: Duration,
    /// Closed intervals kept.
    pub keep: usize,
    /// Distinct values tracked per dimension while an interval is open.
    pub max_keys: usize,
    /// Values kept per dimension once an interval is closed.
    pub top: usize,
}

impl Default for StatsSettings {
    fn default() -> Self {
        StatsSettings {
            interval: Duration::from_secs(10),
            keep: 360,
            max_keys: 1000,
            top: 10,
        }
    }
}

/// What the summaries need from one event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observation<'a> {
    /// Level, when known.
    pub level: Option<Level>,
    /// Source file.
    pub source: &'a str,
    /// Host (empty when unknown).
    pub host: &'a str,
    /// Kubernetes namespace.
    pub namespace: Option<&'a str>,
    /// Access-log facts, when the event is a request.
    pub request: Option<Request<'a>>,
}

/// An access-log request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// HTTP status.
    pub status: u16,
    /// The path (query string allowed), when the line had a request.
    pub path: Option<&'a str>,
}

impl<'a> Observation<'a> {
    /// Reads an event as rules see it; it is a request when it has an integer `status`
    /// between 100 and 599 (the access parser's fields, or a JSON access log's).
    pub fn of(ev: &'a RuleEvent<'a>) -> Observation<'a> {
        Observation {
            level: ev.parsed.level,
            source: ev.source_path,
            host: ev.host,
            namespace: ev.k8s.namespace,
            request: Request::of(ev),
        }
    }
}

impl<'a> Request<'a> {
    /// The request an event records: see [`Observation::of`].
    pub fn of(ev: &'a RuleEvent<'_>) -> Option<Request<'a>> {
        match ev.field("status") {
            Some(Value::Int(s)) if (100..600).contains(s) => Some(Request {
                status: *s as u16,
                path: match ev.field("path") {
                    Some(Value::Str(p)) => Some(p.as_ref()),
                    _ => None,
                },
            }),
            _ => None,
        }
    }
}

/// The first path segment: `/api/orders?x=1` → `/api`, `/` → `/`, `*` → `*`.
pub fn section(path: &str) -> &str {
    let path = path.split(['?', '#']).next().unwrap_or("");
    match path.strip_prefix('/') {
        Some(rest) => {
            let end = rest.find('/').map_or(path.len(), |i| i + 1);
            if end <= 1 {
                "/"
            } else {
                &path[..end]
            }
        }
        None if path.is_empty() => "/",
        None => path.split('/').next().unwrap_or(path),
    }
}

/// Counts by level: trace..fatal, then unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LevelCounts {
    /// `trace`.
    pub trace: u64,
    /// `debug`.
    pub debug: u64,
    /// `info`.
    pub info: u64,
    /// `warn`.
    pub warn: u64,
    /// `error`.
    pub error: u64,
    /// `fatal`.
    pub fatal: u64,
    /// No level.
    pub unknown: u64,
}

impl LevelCounts {
    fn add(&mut self, level: Option<Level>, n: u64) {
        let c = match level {
            Some(Level::Trace) => &mut self.trace,
            Some(Level::Debug) => &mut self.debug,
            Some(Level::Info) => &mut self.info,
            Some(Level::Warn) => &mut self.warn,
            Some(Level::Error) => &mut self.error,
            Some(Level::Fatal) => &mut self.fatal,
            None => &mut self.unknown,
        };
        *c += n;
    }

    fn merge(&mut self, o: &LevelCounts) {
        self.trace += o.trace;
        self.debug += o.debug;
        self.info += o.info;
        self.warn += o.warn;
        self.error += o.error;
        self.fatal += o.fatal;
        self.unknown += o.unknown;
    }
}

/// Access-log figures of one interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AccessSummary {
    /// Requests.
    pub requests: u64,
    /// Requests per second over the interval.
    pub requests_per_sec: f64,
    /// Requests per status class: `1xx` … `5xx`.
    pub status_classes: [u64; 5],
    /// Share of each status class, percent (0 when there were no requests).
    pub status_class_percent: [f64; 5],
    /// The busiest sections (first path segment), most requests first.
    pub top_sections: Vec<Count>,
    /// Requests in sections not listed.
    pub other_sections: u64,
}

/// One interval's summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntervalSummary {
    /// Start of the interval.
    pub start: Timestamp,
    /// Its length, seconds (shorter for the open interval: the time so far).
    pub seconds: f64,
    /// Events.
    pub events: u64,
    /// Events per second.
    pub events_per_sec: f64,
    /// By level.
    pub levels: LevelCounts,
    /// Busiest source files.
    pub top_sources: Vec<Count>,
    /// Events from sources not listed.
    pub other_sources: u64,
    /// Busiest hosts.
    pub top_hosts: Vec<Count>,
    /// Events from hosts not listed.
    pub other_hosts: u64,
    /// Busiest namespaces (events with one).
    pub top_namespaces: Vec<Count>,
    /// Events from namespaces not listed.
    pub other_namespaces: u64,
    /// Access logs, when any request was seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessSummary>,
}

/// What `GET /api/stats` answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsSnapshot {
    /// Interval length, seconds.
    pub interval_secs: u64,
    /// Closed intervals, oldest first, then the open one.
    pub intervals: Vec<IntervalSummary>,
    /// Everything in `intervals` added up.
    pub total: IntervalSummary,
}

#[derive(Debug, Clone)]
struct Open {
    start_ms: u64,
    events: u64,
    levels: LevelCounts,
    sources: TopCounter,
    hosts: TopCounter,
    namespaces: TopCounter,
    requests: u64,
    classes: [u64; 5],
    sections: TopCounter,
}

impl Open {
    fn new(start_ms: u64, max_keys: usize) -> Open {
        Open {
            start_ms,
            events: 0,
            levels: LevelCounts::default(),
            sources: TopCounter::new(max_keys),
            hosts: TopCounter::new(max_keys),
            namespaces: TopCounter::new(max_keys),
            requests: 0,
            classes: [0; 5],
            sections: TopCounter::new(max_keys),
        }
    }

    fn summary(&self, seconds: f64, top: usize) -> IntervalSummary {
        let per_sec = |n: u64| {
            if seconds > 0.0 {
                n as f64 / seconds
            } else {
                0.0
            }
        };
        let (top_sources, other_sources) = self.sources.top(top);
        let (top_hosts, other_hosts) = self.hosts.top(top);
        let (top_namespaces, other_namespaces) = self.namespaces.top(top);
        let access = (self.requests > 0).then(|| {
            let (top_sections, other_sections) = self.sections.top(top);
            AccessSummary {
                requests: self.requests,
                requests_per_sec: per_sec(self.requests),
                status_classes: self.classes,
                status_class_percent: self
                    .classes
                    .map(|c| c as f64 * 100.0 / self.requests as f64),
                top_sections,
                other_sections,
            }
        });
        IntervalSummary {
            start: Timestamp::from_millis(self.start_ms),
            seconds,
            events: self.events,
            events_per_sec: per_sec(self.events),
            levels: self.levels,
            top_sources,
            other_sources,
            top_hosts,
            other_hosts,
            top_namespaces,
            other_namespaces,
            access,
        }
    }
}

/// The summaries: one open interval and the closed ones.
#[derive(Debug, Clone)]
pub struct TrafficStats {
    settings: StatsSettings,
    interval_ms: u64,
    open: Option<Open>,
    closed: VecDeque<IntervalSummary>,
}

impl TrafficStats {
    /// Empty summaries.
    pub fn new(settings: StatsSettings) -> TrafficStats {
        let settings = StatsSettings {
            keep: settings.keep.max(1),
            max_keys: settings.max_keys.max(1),
            top: settings.top.max(1),
            ..settings
        };
        TrafficStats {
            interval_ms: (settings.interval.as_millis() as u64).max(1000),
            settings,
            open: None,
            closed: VecDeque::new(),
        }
    }

    /// Counts `n` events like `obs` at `now_ms`.
    pub fn record(&mut self, now_ms: u64, obs: &Observation<'_>, n: u64) {
        let o = self.open_at(now_ms);
        o.events += n;
        o.levels.add(obs.level, n);
        o.sources.add(obs.source, n);
        if !obs.host.is_empty() {
            o.hosts.add(obs.host, n);
        }
        if let Some(ns) = obs.namespace {
            o.namespaces.add(ns, n);
        }
        if let Some(r) = obs.request {
            o.requests += n;
            if (100..600).contains(&r.status) {
                o.classes[usize::from(r.status / 100 - 1)] += n;
            }
            if let Some(p) = r.path {
                o.sections.add(section(p), n);
            }
        }
    }

    /// Closes intervals that ended by `now_ms` (call from time to time when idle, so a
    /// quiet period shows as empty intervals rather than a gap).
    pub fn advance(&mut self, now_ms: u64) {
        self.open_at(now_ms);
    }

    fn open_at(&mut self, now_ms: u64) -> &mut Open {
        let start = now_ms - now_ms % self.interval_ms;
        let stale = self.open.as_ref().is_some_and(|o| o.start_ms < start);
        if stale {
            if let Some(old) = self.open.take() {
                self.close(old, start);
            }
        }
        let max_keys = self.settings.max_keys;
        self.open.get_or_insert_with(|| Open::new(start, max_keys))
    }

    fn close(&mut self, old: Open, next_start: u64) {
        let secs = self.interval_ms as f64 / 1000.0;
        self.push(old.summary(secs, self.settings.top));
        // Intervals with no events in between, so rates over time stay honest.
        let mut s = old.start_ms + self.interval_ms;
        let missing = (next_start.saturating_sub(s) / self.interval_ms) as usize;
        if missing >= self.settings.keep {
            s = next_start - self.settings.keep as u64 * self.interval_ms;
        }
        while s < next_start {
            self.push(Open::new(s, 1).summary(secs, 1));
            s += self.interval_ms;
        }
    }

    fn push(&mut self, s: IntervalSummary) {
        if self.closed.len() == self.settings.keep {
            self.closed.pop_front();
        }
        self.closed.push_back(s);
    }

    /// The last `last` intervals (all kept ones when `None`), the open one included,
    /// and their total.
    pub fn snapshot(&mut self, now_ms: u64, last: Option<usize>) -> StatsSnapshot {
        self.advance(now_ms);
        let top = self.settings.top;
        let mut intervals: Vec<IntervalSummary> = self.closed.iter().cloned().collect();
        if let Some(o) = &self.open {
            let secs = (now_ms.saturating_sub(o.start_ms) as f64 / 1000.0).max(0.001);
            intervals.push(o.summary(secs, top));
        }
        if let Some(n) = last {
            let skip = intervals.len().saturating_sub(n.max(1));
            intervals.drain(..skip);
        }
        let total = total(&intervals, top);
        StatsSnapshot {
            interval_secs: self.interval_ms / 1000,
            intervals,
            total,
        }
    }
}

fn total(intervals: &[IntervalSummary], top: usize) -> IntervalSummary {
    let mut levels = LevelCounts::default();
    let mut events = 0;
    let mut seconds = 0.0;
    let mut sources = counter::Merge::default();
    let mut hosts = counter::Merge::default();
    let mut namespaces = counter::Merge::default();
    let mut sections = counter::Merge::default();
    let mut requests = 0;
    let mut classes = [0u64; 5];
    for i in intervals {
        events += i.events;
        seconds += i.seconds;
        levels.merge(&i.levels);
        sources.add(&i.top_sources, i.other_sources);
        hosts.add(&i.top_hosts, i.other_hosts);
        namespaces.add(&i.top_namespaces, i.other_namespaces);
        if let Some(a) = &i.access {
            requests += a.requests;
            for (c, n) in classes.iter_mut().zip(a.status_classes) {
                *c += n;
            }
            sections.add(&a.top_sections, a.other_sections);
        }
    }
    let per_sec = |n: u64| {
        if seconds > 0.0 {
            n as f64 / seconds
        } else {
            0.0
        }
    };
    let (top_sources, other_sources) = sources.top(top);
    let (top_hosts, other_hosts) = hosts.top(top);
    let (top_namespaces, other_namespaces) = namespaces.top(top);
    let access = (requests > 0).then(|| {
        let (top_sections, other_sections) = sections.top(top);
        AccessSummary {
            requests,
            requests_per_sec: per_sec(requests),
            status_classes: classes,
            status_class_percent: classes.map(|c| c as f64 * 100.0 / requests as f64),
            top_sections,
            other_sections,
        }
    });
    IntervalSummary {
        start: intervals.first().map_or(Timestamp(0), |i| i.start),
        seconds,
        events,
        events_per_sec: per_sec(events),
        levels,
        top_sources,
        other_sources,
        top_hosts,
        other_hosts,
        top_namespaces,
        other_namespaces,
        access,
    }
}

/// Summaries kept by several pipeline workers at once: each worker owns one part and
/// locks it once per batch (only readers of the summaries contend with it); a snapshot
/// merges the parts interval by interval.
#[derive(Debug)]
pub struct SharedTraffic {
    parts: Vec<Arc<Mutex<TrafficStats>>>,
    top: usize,
}

impl SharedTraffic {
    /// `parts` empty summaries with `settings`.
    pub fn new(settings: StatsSettings, parts: usize) -> SharedTraffic {
        SharedTraffic {
            parts: (0..parts.max(1))
                .map(|_| Arc::new(Mutex::new(TrafficStats::new(settings))))
                .collect(),
            top: settings.top.max(1),
        }
    }

    /// Part `i` (modulo the number of parts), for one worker to record into.
    pub fn part(&self, i: usize) -> Arc<Mutex<TrafficStats>> {
        Arc::clone(&self.parts[i % self.parts.len()])
    }

    /// [`TrafficStats::snapshot`] over every part: intervals with the same start are added
    /// up (their length is the interval's, not the sum).
    pub fn snapshot(&self, now_ms: u64, last: Option<usize>) -> StatsSnapshot {
        let mut snaps = self.parts.iter().map(|p| {
            p.lock()
                .unwrap_or_else(|e| e.into_inner())
                .snapshot(now_ms, last)
        });
        let Some(first) = snaps.next() else {
            return TrafficStats::new(StatsSettings::default()).snapshot(now_ms, last);
        };
        let interval_secs = first.interval_secs;
        let mut by_start: std::collections::BTreeMap<i64, Vec<IntervalSummary>> =
            std::collections::BTreeMap::new();
        for s in std::iter::once(first).chain(snaps) {
            for i in s.intervals {
                by_start.entry(i.start.0).or_default().push(i);
            }
        }
        let intervals: Vec<IntervalSummary> = by_start
            .into_values()
            .map(|group| {
                let seconds = group.iter().map(|i| i.seconds).fold(0.0, f64::max);
                let mut m = total(&group, self.top);
                m.seconds = seconds;
                m.events_per_sec = rate(m.events, seconds);
                if let Some(a) = &mut m.access {
                    a.requests_per_sec = rate(a.requests, seconds);
                }
                m
            })
            .collect();
        let total = total(&intervals, self.top);
        StatsSnapshot {
            interval_secs,
            intervals,
            total,
        }
    }
}

fn rate(n: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    }
}
