//! Threshold alerts and notify digests: the state behind the `alert` and `notify` actions.
//!
//! An alert counts matching events in a sliding window kept as a ring of buckets (one
//! second each, or `window / 600` for windows over ten minutes, so a group's ring holds
//! at most 600 counters). When the count goes above the threshold, one `firing`
//! notification is made; when it is back to or below it, one `recovered` notification
//! with how long it fired. Events are checked as they come; [`AlertState::tick`] checks
//! the windows that no event touched (so a quiet stream recovers) and forgets idle
//! groups. Groups are bounded by `max_groups`; further values count in one `(other)`
//! group.
//!
//! A notify action makes one notification on the first match, then counts matches until
//! its interval has passed and sends them as one digest (from the next match or tick).

use std::collections::HashMap;
use std::sync::Mutex;

use xxhash_rust::xxh3::Xxh3DefaultBuilder;

use super::event::RuleEvent;
use super::notification::{human_duration, EventSample, Notification, NotificationKind, Outbox};

/// Most buckets per window ring.
const MAX_BUCKETS: u64 = 600;
/// The group that collects values beyond `max_groups`.
pub const OTHER_GROUP: &str = "(other)";

/// Counts over a sliding window, in a ring of buckets.
#[derive(Debug, Clone)]
pub struct Window {
    bucket_ms: u64,
    /// (bucket number, count) per slot.
    slots: Vec<(u64, u64)>,
    head: u64,
    total: u64,
}

impl Window {
    /// A window of `window_ms` (at least one second).
    pub fn new(window_ms: u64) -> Window {
        let window_ms = window_ms.max(1000);
        let bucket_ms = (window_ms / MAX_BUCKETS).max(1000);
        let n = window_ms.div_ceil(bucket_ms) as usize;
        Window {
            bucket_ms,
            slots: vec![(0, 0); n],
            head: 0,
            total: 0,
        }
    }

    fn advance(&mut self, now_ms: u64) {
        let b = now_ms / self.bucket_ms;
        if b <= self.head {
            return;
        }
        let n = self.slots.len() as u64;
        let first = if b - self.head > n {
            b - n + 1
        } else {
            self.head + 1
        };
        for i in first..=b {
            let slot = &mut self.slots[(i % n) as usize];
            self.total -= slot.1;
            *slot = (i, 0);
        }
        self.head = b;
    }

    /// Adds `n` events at `now_ms`. Events older than the newest bucket count in it.
    pub fn add(&mut self, now_ms: u64, n: u64) {
        self.advance(now_ms);
        let len = self.slots.len() as u64;
        let slot = &mut self.slots[(self.head % len) as usize];
        slot.1 += n;
        self.total += n;
    }

    /// Events in the window ending at `now_ms`.
    pub fn count(&mut self, now_ms: u64) -> u64 {
        self.advance(now_ms);
        self.total
    }
}

/// The fixed part of an alert.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSpec {
    /// Rule name.
    pub rule: String,
    /// Notifier name.
    pub notifier: String,
    /// Window length, ms.
    pub window_ms: u64,
    /// Fire when the count is above this.
    pub threshold: u64,
    /// Most groups.
    pub max_groups: usize,
}

#[derive(Debug)]
struct Group {
    window: Window,
    firing_since: Option<u64>,
    peak: u64,
}

/// An alert's groups.
#[derive(Debug)]
pub struct AlertState {
    spec: AlertSpec,
    groups: Mutex<Groups>,
}

#[derive(Debug, Default)]
struct Groups {
    /// The one group of an alert without `group_by` (no hashing on the event path).
    single: Option<Group>,
    by_value: HashMap<Box<str>, Group, Xxh3DefaultBuilder>,
}

impl AlertState {
    /// A new alert with no groups.
    pub fn new(spec: AlertSpec) -> AlertState {
        AlertState {
            spec,
            groups: Mutex::new(Groups::default()),
        }
    }

    fn new_group(&self) -> Group {
        Group {
            window: Window::new(self.spec.window_ms),
            firing_since: None,
            peak: 0,
        }
    }

    /// Counts one event of group `group` (`""` when ungrouped) at `now_ms`; notifies when
    /// the alert starts firing.
    pub fn record(&self, group: &str, now_ms: u64, ev: &RuleEvent<'_>, outbox: &Outbox) {
        let mut guard = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        let groups = &mut *guard;
        let (key, g) = if group.is_empty() {
            ("", groups.single.get_or_insert_with(|| self.new_group()))
        } else {
            let map = &mut groups.by_value;
            let key = if map.contains_key(group) || map.len() < self.spec.max_groups {
                group
            } else {
                OTHER_GROUP
            };
            if !map.contains_key(key) {
                map.insert(key.into(), self.new_group());
            }
            match map.get_mut(key) {
                Some(g) => (key, g),
                None => return,
            }
        };
        g.window.add(now_ms, 1);
        let count = g.window.total;
        if g.firing_since.is_none() && count > self.spec.threshold {
            g.firing_since = Some(now_ms);
            g.peak = count;
            outbox.push(self.firing(key, count, now_ms, Some(EventSample::of(ev))));
        } else if g.firing_since.is_some() {
            g.peak = g.peak.max(count);
        }
    }

    /// Re-checks every group at `now_ms`: recovered groups notify, idle ones are
    /// forgotten.
    pub fn tick(&self, now_ms: u64, outbox: &Outbox) {
        let mut guard = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        let groups = &mut *guard;
        let check = |key: &str, g: &mut Group| {
            let count = g.window.count(now_ms);
            if let Some(since) = g.firing_since {
                if count <= self.spec.threshold {
                    g.firing_since = None;
                    outbox.push(self.recovered(key, count, g.peak, now_ms, since));
                }
            }
            g.firing_since.is_some() || count > 0
        };
        if let Some(g) = groups.single.as_mut() {
            if !check("", g) {
                groups.single = None;
            }
        }
        groups.by_value.retain(|key, g| check(key, g));
    }

    /// Groups currently firing, with the time each started.
    pub fn firing_groups(&self) -> Vec<(String, u64)> {
        let groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        let single = groups.single.iter().map(|g| ("", g));
        let mut out: Vec<(String, u64)> = single
            .chain(groups.by_value.iter().map(|(k, g)| (&**k, g)))
            .filter_map(|(k, g)| g.firing_since.map(|s| (k.to_string(), s)))
            .collect();
        out.sort();
        out
    }

    fn label(&self, group: &str) -> String {
        if group.is_empty() {
            self.spec.rule.clone()
        } else {
            format!("{} ({group})", self.spec.rule)
        }
    }

    fn base(&self, kind: NotificationKind, group: &str, count: u64, now_ms: u64) -> Notification {
        Notification {
            rule: self.spec.rule.clone(),
            notifier: self.spec.notifier.clone(),
            kind,
            at_ms: now_ms,
            summary: String::new(),
            group: (!group.is_empty()).then(|| group.to_owned()),
            count,
            threshold: Some(self.spec.threshold),
            window_secs: Some(self.spec.window_ms / 1000),
            duration_secs: None,
            sample: None,
        }
    }

    fn firing(
        &self,
        group: &str,
        count: u64,
        now_ms: u64,
        sample: Option<EventSample>,
    ) -> Notification {
        let mut n = self.base(NotificationKind::Firing, group, count, now_ms);
        n.summary = format!(
            "[FIRING] {}: {count} events in the last {} (threshold {})",
            self.label(group),
            human_duration(self.spec.window_ms / 1000),
            self.spec.threshold
        );
        n.sample = sample;
        n
    }

    fn recovered(
        &self,
        group: &str,
        count: u64,
        peak: u64,
        now_ms: u64,
        since: u64,
    ) -> Notification {
        let secs = now_ms.saturating_sub(since) / 1000;
        let mut n = self.base(NotificationKind::Recovered, group, count, now_ms);
        n.summary = format!(
            "[RECOVERED] {}: {count} events in the last {} (threshold {}) after firing for {} (peak {peak})",
            self.label(group),
            human_duration(self.spec.window_ms / 1000),
            self.spec.threshold,
            human_duration(secs)
        );
        n.duration_secs = Some(secs);
        n
    }
}

#[derive(Debug, Default)]
struct DigestInner {
    /// When the last notification went out (None: never).
    last_sent: Option<u64>,
    /// Matches since then.
    pending: u64,
    sample: Option<EventSample>,
}

/// The state of a notify action.
#[derive(Debug)]
pub struct NotifyState {
    rule: String,
    notifier: String,
    interval_ms: u64,
    inner: Mutex<DigestInner>,
}

impl NotifyState {
    /// A notify action of `rule` to `notifier`, at most one notification per interval.
    pub fn new(rule: &str, notifier: &str, interval_ms: u64) -> NotifyState {
        NotifyState {
            rule: rule.to_owned(),
            notifier: notifier.to_owned(),
            interval_ms,
            inner: Mutex::new(DigestInner::default()),
        }
    }

    /// One match at `now_ms`.
    pub fn record(&self, now_ms: u64, ev: &RuleEvent<'_>, outbox: &Outbox) {
        let mut d = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match d.last_sent {
            Some(t) if now_ms < t.saturating_add(self.interval_ms) => {
                d.pending += 1;
                if d.sample.is_none() {
                    d.sample = Some(EventSample::of(ev));
                }
            }
            Some(_) if d.pending > 0 => {
                d.pending += 1;
                self.flush(&mut d, now_ms, outbox);
            }
            _ => {
                d.last_sent = Some(now_ms);
                let sample = EventSample::of(ev);
                let summary = format!("[MATCH] {}: {}", self.rule, sample.message);
                outbox.push(self.note(NotificationKind::Match, 1, now_ms, summary, Some(sample)));
            }
        }
    }

    /// Sends a pending digest once the interval has passed.
    pub fn tick(&self, now_ms: u64, outbox: &Outbox) {
        let mut d = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if d.pending > 0
            && d.last_sent
                .is_some_and(|t| now_ms >= t.saturating_add(self.interval_ms))
        {
            self.flush(&mut d, now_ms, outbox);
        }
    }

    fn flush(&self, d: &mut DigestInner, now_ms: u64, outbox: &Outbox) {
        let since = d.last_sent.unwrap_or(now_ms);
        let secs = now_ms.saturating_sub(since) / 1000;
        let summary = format!(
            "[DIGEST] {}: {} more matching events in the last {}",
            self.rule,
            d.pending,
            human_duration(secs)
        );
        let n = self.note(
            NotificationKind::Digest,
            d.pending,
            now_ms,
            summary,
            d.sample.take(),
        );
        outbox.push(n);
        d.pending = 0;
        d.last_sent = Some(now_ms);
    }

    fn note(
        &self,
        kind: NotificationKind,
        count: u64,
        now_ms: u64,
        summary: String,
        sample: Option<EventSample>,
    ) -> Notification {
        Notification {
            rule: self.rule.clone(),
            notifier: self.notifier.clone(),
            kind,
            at_ms: now_ms,
            summary,
            group: None,
            count,
            threshold: None,
            window_secs: None,
            duration_secs: None,
            sample,
        }
    }
}
