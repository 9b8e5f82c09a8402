//! The agent's Prometheus metrics (`logferry_` prefix, no per-file labels: a node may
//! tail thousands of files).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Every metric the agent exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Lines read from files.
    pub lines_read: Counter,
    /// Bytes read from files.
    pub bytes_read: Counter,
    /// Lines cut at `tail.max_line_bytes`.
    pub lines_truncated: Counter,
    /// Batches written to the spool.
    pub batches_spooled: Counter,
    /// Batches acknowledged by the aggregator.
    pub batches_acked: Counter,
    /// Failed send attempts that will be retried.
    pub batches_retried: Counter,
    /// Batches refused for good (permanent 4xx), kept in the dead-letter tree.
    pub batches_dead_lettered: Counter,
    /// Lines deleted from a full spool (`when_full = "drop_oldest"`).
    pub spool_dropped_lines: Counter,
    /// Errors writing to the spool (e.g. disk full); the write is retried.
    pub spool_errors: Counter,
    /// Damaged spools moved aside at start.
    pub spool_recreated: Counter,
    /// Files truncated in place (copytruncate) and re-read from the start.
    pub files_truncated: Counter,
    /// Bytes of batches in the spool.
    pub spool_bytes: Gauge,
    /// Batches in the spool.
    pub spool_batches: Gauge,
    /// Files currently tracked (open).
    pub files_open: Gauge,
    /// Unix time (seconds) of the last acknowledgement.
    pub last_ack_timestamp: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("logferry_agent");
        let m = Metrics {
            registry: Registry::default(),
            lines_read: Counter::default(),
            bytes_read: Counter::default(),
            lines_truncated: Counter::default(),
            batches_spooled: Counter::default(),
            batches_acked: Counter::default(),
            batches_retried: Counter::default(),
            batches_dead_lettered: Counter::default(),
            spool_dropped_lines: Counter::default(),
            spool_errors: Counter::default(),
            spool_recreated: Counter::default(),
            files_truncated: Counter::default(),
            spool_bytes: Gauge::default(),
            spool_batches: Gauge::default(),
            files_open: Gauge::default(),
            last_ack_timestamp: Gauge::default(),
        };
        let counters: [(&str, &str, &Counter); 11] = [
            ("lines_read", "Lines read from files", &m.lines_read),
            ("bytes_read", "Bytes read from files", &m.bytes_read),
            (
                "lines_truncated",
                "Lines cut at tail.max_line_bytes",
                &m.lines_truncated,
            ),
            (
                "batches_spooled",
                "Batches written to the spool",
                &m.batches_spooled,
            ),
            (
                "batches_acked",
                "Batches acknowledged by the aggregator",
                &m.batches_acked,
            ),
            (
                "batches_retried",
                "Failed send attempts that will be retried",
                &m.batches_retried,
            ),
            (
                "batches_dead_lettered",
                "Batches refused for good and kept in the dead-letter tree",
                &m.batches_dead_lettered,
            ),
            (
                "spool_dropped_lines",
                "Lines deleted from a full spool (drop_oldest)",
                &m.spool_dropped_lines,
            ),
            (
                "spool_errors",
                "Errors writing to the spool; the write is retried",
                &m.spool_errors,
            ),
            (
                "spool_recreated",
                "Damaged spools moved aside at start",
                &m.spool_recreated,
            ),
            (
                "files_truncated",
                "Files truncated in place and re-read from the start",
                &m.files_truncated,
            ),
        ];
        for (name, help, c) in counters {
            registry.register(name, help, c.clone());
        }
        let gauges: [(&str, &str, &Gauge); 4] = [
            (
                "spool_bytes",
                "Bytes of batches in the spool",
                &m.spool_bytes,
            ),
            ("spool_batches", "Batches in the spool", &m.spool_batches),
            ("files_open", "Files currently tracked", &m.files_open),
            (
                "last_ack_timestamp_seconds",
                "Unix time of the last acknowledgement",
                &m.last_ack_timestamp,
            ),
        ];
        for (name, help, g) in gauges {
            registry.register(name, help, g.clone());
        }
        Metrics { registry, ..m }
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
