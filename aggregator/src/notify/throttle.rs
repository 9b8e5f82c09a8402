//! De-duplication and the per-rule limit, before notifications are queued for delivery.
//!
//! - A notification identical to one passed within `dedup_window` (same notifier, rule,
//!   kind, group and summary) is dropped and counted.
//! - Per rule and notifier, at most `per_rule_limit` notifications pass in each
//!   `per_rule_window` (a fixed window starting with the first one). Beyond that they are
//!   held back and counted; when the window ends, one digest carries how many were held
//!   and the first few summaries. A storm therefore makes `per_rule_limit + 1` messages
//!   per window, whatever its size.
//!
//! Pure: the caller passes the time. Bounded: at most [`MAX_TRACKED`] (rule, notifier)
//! windows and dedup keys; beyond that the oldest are forgotten.

use std::collections::{HashMap, VecDeque};

use crate::rules::{Notification, NotificationKind};

/// Most (rule, notifier) windows and dedup entries remembered.
pub const MAX_TRACKED: usize = 10_000;
/// Summaries listed in a digest.
pub const DIGEST_LINES: usize = 10;

/// Throttle settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Notifications per rule and notifier per window.
    pub per_rule_limit: u32,
    /// Window length, ms.
    pub per_rule_window_ms: u64,
    /// Dedup memory, ms.
    pub dedup_window_ms: u64,
}

#[derive(Debug)]
struct RuleWindow {
    start_ms: u64,
    passed: u32,
    held: u64,
    lines: Vec<String>,
}

/// The throttle's state.
#[derive(Debug)]
pub struct Throttle {
    settings: ThrottleSettings,
    windows: HashMap<(String, String), RuleWindow>,
    seen: HashMap<u64, u64>,
    seen_order: VecDeque<(u64, u64)>,
    duplicates: u64,
}

fn dedup_key(n: &Notification) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for part in [
        n.notifier.as_str(),
        n.rule.as_str(),
        kind_name(n.kind),
        n.group.as_deref().unwrap_or(""),
        n.summary.as_str(),
    ] {
        h.update(part.as_bytes());
        h.update(&[0]);
    }
    h.digest()
}

fn kind_name(k: NotificationKind) -> &'static str {
    match k {
        NotificationKind::Match => "match",
        NotificationKind::Digest => "digest",
        NotificationKind::Firing => "firing",
        NotificationKind::Recovered => "recovered",
    }
}

impl Throttle {
    /// A throttle with nothing seen.
    pub fn new(settings: ThrottleSettings) -> Throttle {
        Throttle {
            settings,
            windows: HashMap::new(),
            seen: HashMap::new(),
            seen_order: VecDeque::new(),
            duplicates: 0,
        }
    }

    /// Duplicates dropped so far.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Offers `n` at `now_ms`; answers what to send now (nothing, `n`, or a digest that
    /// became due followed by `n`).
    pub fn offer(&mut self, n: Notification, now_ms: u64) -> Vec<Notification> {
        let mut out = self.flush(now_ms);
        self.forget_seen(now_ms);
        let key = dedup_key(&n);
        if self.seen.contains_key(&key) {
            self.duplicates += 1;
            return out;
        }
        self.seen.insert(key, now_ms);
        self.seen_order.push_back((now_ms, key));
        let limit = self.settings.per_rule_limit.max(1);
        if self.windows.len() >= MAX_TRACKED {
            // Bounded memory: drop the windows with nothing held.
            self.windows.retain(|_, w| w.held > 0);
        }
        let w = self
            .windows
            .entry((n.rule.clone(), n.notifier.clone()))
            .or_insert(RuleWindow {
                start_ms: now_ms,
                passed: 0,
                held: 0,
                lines: Vec::new(),
            });
        if w.passed < limit {
            w.passed += 1;
            out.push(n);
        } else {
            w.held += 1;
            if w.lines.len() < DIGEST_LINES {
                w.lines.push(n.summary);
            }
        }
        out
    }

    /// Digests whose window ended by `now_ms`; ended windows are forgotten.
    pub fn flush(&mut self, now_ms: u64) -> Vec<Notification> {
        let window = self.settings.per_rule_window_ms;
        let mut out = Vec::new();
        self.windows.retain(|(rule, notifier), w| {
            if now_ms < w.start_ms.saturating_add(window) {
                return true;
            }
            if w.held > 0 {
                let mut summary = format!(
                    "[DIGEST] {rule}: {} more notifications held back in the last {}",
                    w.held,
                    crate::rules::notification::human_duration(window / 1000)
                );
                for l in &w.lines {
                    summary.push_str("\n- ");
                    summary.push_str(l);
                }
                if w.held as usize > w.lines.len() {
                    summary.push_str("\n- …");
                }
                out.push(Notification {
                    rule: rule.clone(),
                    notifier: notifier.clone(),
                    kind: NotificationKind::Digest,
                    at_ms: now_ms,
                    summary,
                    group: None,
                    count: w.held,
                    threshold: None,
                    window_secs: Some(window / 1000),
                    duration_secs: None,
                    sample: None,
                });
            }
            false
        });
        out
    }

    fn forget_seen(&mut self, now_ms: u64) {
        while let Some(&(t, k)) = self.seen_order.front() {
            let expired = now_ms.saturating_sub(t) >= self.settings.dedup_window_ms;
            if !expired && self.seen_order.len() <= MAX_TRACKED {
                break;
            }
            self.seen_order.pop_front();
            if self.seen.get(&k) == Some(&t) {
                self.seen.remove(&k);
            }
        }
    }
}
