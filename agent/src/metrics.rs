//! The agent's Prometheus metrics (`logferry_` prefix, no per-file labels: a node may
//! tail thousands of files).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
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
    /// Send attempts (first sends and retries).
    pub batches_sent: Counter,
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
    /// Spooled batches whose bytes did not check out, moved to the dead-letter store.
    pub spool_damaged_batches: Counter,
    /// Files truncated in place (copytruncate) and re-read from the start.
    pub files_truncated: Counter,
    /// Files let go after they were renamed away or deleted and read to their end.
    pub files_released: Counter,
    /// Bytes never read from deleted files let go after `tail.deleted_file_hold`.
    pub deleted_unread_bytes: Counter,
    /// Files skipped because their first kilobyte equals that of a file already read.
    pub files_duplicate: Counter,
    /// Lines of a `cri`/`docker` input that did not decode; sent as they were.
    pub lines_undecodable: Counter,
    /// Compressed files that stopped decoding (corrupt data, wrong checksum, not gzip).
    pub gzip_corrupt_files: Counter,
    /// Compressed files that ended inside a gzip member and stopped growing.
    pub gzip_incomplete_files: Counter,
    /// Compressed files recognised as copies of plain files already read.
    pub gzip_copies: Counter,
    /// Bytes of batches in the spool.
    pub spool_bytes: Gauge,
    /// Batches in the spool.
    pub spool_batches: Gauge,
    /// Files open (holding a descriptor).
    pub files_open: Gauge,
    /// Files tracked (open, or closed while idle).
    pub files_watched: Gauge,
    /// Per input: bytes in its files not yet read.
    pub input_lag_bytes: Family<Vec<(&'static str, String)>, Gauge>,
    /// Seconds since the last acknowledgement (set when metrics are read).
    last_ack_age: Gauge,
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
            batches_sent: Counter::default(),
            batches_acked: Counter::default(),
            batches_retried: Counter::default(),
            batches_dead_lettered: Counter::default(),
            spool_dropped_lines: Counter::default(),
            spool_errors: Counter::default(),
            spool_recreated: Counter::default(),
            spool_damaged_batches: Counter::default(),
            files_truncated: Counter::default(),
            files_released: Counter::default(),
            deleted_unread_bytes: Counter::default(),
            files_duplicate: Counter::default(),
            lines_undecodable: Counter::default(),
            gzip_corrupt_files: Counter::default(),
            gzip_incomplete_files: Counter::default(),
            gzip_copies: Counter::default(),
            spool_bytes: Gauge::default(),
            spool_batches: Gauge::default(),
            files_open: Gauge::default(),
            files_watched: Gauge::default(),
            input_lag_bytes: Family::default(),
            last_ack_age: Gauge::default(),
            last_ack_timestamp: Gauge::default(),
        };
        let counters: [(&str, &str, &Counter); 20] = [
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
                "batches_sent",
                "Send attempts (first sends and retries)",
                &m.batches_sent,
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
                "spool_damaged_batches",
                "Spooled batches found damaged and moved to the dead-letter store",
                &m.spool_damaged_batches,
            ),
            (
                "files_truncated",
                "Files truncated in place and re-read from the start",
                &m.files_truncated,
            ),
            (
                "files_released",
                "Files let go after being renamed away or deleted and read to their end",
                &m.files_released,
            ),
            (
                "deleted_unread_bytes",
                "Bytes never read from deleted files let go after tail.deleted_file_hold",
                &m.deleted_unread_bytes,
            ),
            (
                "files_duplicate",
                "Files skipped because their first kilobyte equals a file already read",
                &m.files_duplicate,
            ),
            (
                "lines_undecodable",
                "Lines of a cri or docker input that did not decode, sent as they were",
                &m.lines_undecodable,
            ),
            (
                "gzip_corrupt_files",
                "Compressed files that stopped decoding; their lines before the damage were sent",
                &m.gzip_corrupt_files,
            ),
            (
                "gzip_incomplete_files",
                "Compressed files that ended inside a gzip member and stopped growing",
                &m.gzip_incomplete_files,
            ),
            (
                "gzip_copies",
                "Compressed files recognised as copies of plain files already read",
                &m.gzip_copies,
            ),
        ];
        for (name, help, c) in counters {
            registry.register(name, help, c.clone());
        }
        let gauges: [(&str, &str, &Gauge); 6] = [
            (
                "spool_bytes",
                "Bytes of batches in the spool",
                &m.spool_bytes,
            ),
            ("spool_batches", "Batches in the spool", &m.spool_batches),
            (
                "files_open",
                "Files holding an open descriptor",
                &m.files_open,
            ),
            (
                "files_watched",
                "Files tracked (open, or closed while idle)",
                &m.files_watched,
            ),
            (
                "last_ack_age_seconds",
                "Seconds since the last acknowledgement (0 before the first)",
                &m.last_ack_age,
            ),
            (
                "last_ack_timestamp_seconds",
                "Unix time of the last acknowledgement",
                &m.last_ack_timestamp,
            ),
        ];
        for (name, help, g) in gauges {
            registry.register(name, help, g.clone());
        }
        registry.register(
            "input_lag_bytes",
            "Bytes in an input's files not yet read",
            m.input_lag_bytes.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let last = self.last_ack_timestamp.get();
        if last > 0 {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(last);
            self.last_ack_age.set((now - last).max(0));
        }
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
