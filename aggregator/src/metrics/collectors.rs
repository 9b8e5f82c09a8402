//! Metrics read at scrape time rather than counted on the hot path: per-rule counters
//! (the engine keeps them as atomics), notification delivery counters, and the process's
//! CPU time, resident memory and open file descriptors (from `/proc/self`).
//!
//! Labels stay bounded: `rule` takes one value per configured rule.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use crate::notify::service::DeliveryStats;
use crate::rules::RuleSet;

/// Reads one counter of a rule.
type RuleCounter = fn(&crate::rules::RuleStats) -> u64;

/// `logferry_rule_{matched,dropped,redacted}_events_total{rule}` and
/// `logferry_rule_alert_groups_firing{rule}`.
#[derive(Debug)]
pub struct RuleMetrics(pub Arc<RuleSet>);

impl Collector for RuleMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let stats = self.0.stats();
        let counters: [(&str, &str, RuleCounter); 3] = [
            (
                "rule_matched_events",
                "Events whose rule condition held, per rule",
                |s| s.matched,
            ),
            (
                "rule_dropped_events",
                "Events a rule dropped (drop, sample, rate limit), per rule",
                |s| s.dropped,
            ),
            (
                "rule_redactions",
                "Replacements made by a rule's redact actions, per rule",
                |s| s.redacted,
            ),
        ];
        for (name, help, value) in counters {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for s in &stats {
                let labels = [("rule", s.name.as_str())];
                ConstCounter::new(value(s)).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "rule_alert_groups_firing",
            "Alert groups firing now, per rule",
            None,
            MetricType::Gauge,
        )?;
        for s in &stats {
            let labels = [("rule", s.name.as_str())];
            ConstGauge::new(s.firing.len() as i64).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// `logferry_notifications_{delivered,failed_attempts,dropped,duplicates}_total`.
#[derive(Debug)]
pub struct NotificationMetrics(pub Arc<DeliveryStats>);

impl Collector for NotificationMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let n = &self.0;
        for (name, help, v) in [
            (
                "notifications_delivered",
                "Notifications delivered",
                &n.delivered,
            ),
            (
                "notifications_failed_attempts",
                "Failed delivery attempts (each retry counts)",
                &n.failed_attempts,
            ),
            (
                "notifications_dropped",
                "Notifications dropped: refused for good, too old, unknown notifier or queue full",
                &n.dropped,
            ),
            (
                "notifications_duplicates",
                "Notifications not sent again because an identical one was sent recently",
                &n.duplicates,
            ),
        ] {
            let m = ConstCounter::new(v.load(Ordering::Relaxed));
            m.encode(encoder.encode_descriptor(name, help, None, m.metric_type())?)?;
        }
        Ok(())
    }
}

/// `logferry_process_cpu_seconds_total`, `logferry_process_resident_memory_bytes`,
/// `logferry_process_open_fds`: what the process costs, read from `/proc/self`. Absent
/// where `/proc` is not available.
#[derive(Debug, Default)]
pub struct ProcessMetrics;

/// CPU seconds (user + system) from `/proc/self/stat`.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then(|| (utime + stime) / ticks as f64)
}

/// Resident set size from `/proc/self/status` (`VmRSS`, in kB).
fn resident_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn open_fds() -> Option<i64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as i64)
}

impl Collector for ProcessMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        if let Some(cpu) = cpu_seconds() {
            let m = ConstCounter::new(cpu);
            m.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time of the process",
                None,
                m.metric_type(),
            )?)?;
        }
        for (name, help, v) in [
            (
                "process_resident_memory_bytes",
                "Resident memory of the process",
                resident_bytes(),
            ),
            (
                "process_open_fds",
                "Open file descriptors of the process",
                open_fds(),
            ),
        ] {
            if let Some(v) = v {
                let m = ConstGauge::new(v);
                m.encode(encoder.encode_descriptor(name, help, None, m.metric_type())?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_figures_are_read_and_plausible() {
        let cpu = cpu_seconds().unwrap();
        assert!(cpu >= 0.0);
        let rss = resident_bytes().unwrap();
        assert!(rss > 1 << 20, "{rss}");
        let before = open_fds().unwrap();
        let f = std::fs::File::open("/proc/self/stat").unwrap();
        assert!(open_fds().unwrap() > before);
        drop(f);
    }
}

/// `logferry_sink_queue_{events,bytes,oldest_seconds,dead_letters}{sink}`: what each
/// queued sink's durable queue holds, read at scrape time.
#[derive(Debug)]
pub struct SinkQueueMetrics(pub Arc<crate::sink::SinkBoard>);

impl Collector for SinkQueueMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let queued: Vec<(String, crate::sink::QueueState)> = self
            .0
            .snapshot()
            .into_iter()
            .filter_map(|s| Some((s.name, s.queue?)))
            .collect();
        type Read = fn(&crate::sink::QueueState) -> f64;
        let gauges: [(&str, &str, Read); 4] = [
            (
                "sink_queue_events",
                "Events waiting in a sink's queue",
                |q| q.events as f64,
            ),
            ("sink_queue_bytes", "Bytes waiting in a sink's queue", |q| {
                q.bytes as f64
            }),
            (
                "sink_queue_oldest_seconds",
                "How long the oldest event in a sink's queue has waited",
                |q| q.oldest_age_seconds,
            ),
            (
                "sink_queue_dead_letters",
                "Dead letters a sink keeps",
                |q| q.dead_letters as f64,
            ),
        ];
        for (name, help, read) in gauges {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (sink, q) in &queued {
                let labels = [("sink", sink.as_str())];
                ConstGauge::new(read(q)).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
