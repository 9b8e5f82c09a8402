//! The aggregator's Prometheus metrics (`logferry_` prefix, bounded labels only).
//! Counters the hot path updates are fields of [`Metrics`]; figures read at scrape time
//! come from [`collectors`].

pub mod collectors;

use prometheus_client::encoding::EncodeLabelSet;
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Label for batch outcomes.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `accepted`, `duplicate`, `rejected`, `throttled` or `failed`.
    pub result: &'static str,
}

/// Label naming a sink.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabel {
    /// Sink name from the config (a bounded set).
    pub sink: String,
}

/// Label naming a log format (a bounded set: built-in and configured formats).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FormatLabel {
    /// Format name.
    pub format: &'static str,
}

/// Label naming what the pipeline's coordinator spends its time on.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabel {
    /// The coordinator's `write` (to the sinks), `sync` (making sinks durable and recording
    /// progress) and `wait` (for workers to finish frames); the workers' `idle` (waiting
    /// for a frame, summed over workers).
    pub stage: &'static str,
}

/// Label naming an input (its configured name: a bounded set).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InputLabel {
    /// Input name from the config.
    pub input: String,
}

/// Label naming an input and why something happened to a message or a connection.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InputReasonLabel {
    /// Input name from the config.
    pub input: String,
    /// A fixed word per case (see [`InputMetrics`]).
    pub reason: &'static str,
}

/// Label naming an input and the result of a connection attempt.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InputResultLabel {
    /// Input name from the config.
    pub input: String,
    /// A fixed word per case (see [`InputMetrics`]).
    pub result: &'static str,
}

/// One input's metrics, resolved once so the hot path does not hash labels.
#[derive(Debug, Clone)]
pub struct InputMetrics {
    name: String,
    /// Messages received (counted before any drop, so received = admitted + dropped).
    pub messages: Counter,
    /// Bytes read from the network (before TLS decryption for TLS: plaintext bytes).
    pub bytes: Counter,
    /// Messages cut to `max_message_bytes`.
    pub truncated: Counter,
    /// Messages that are not valid UTF-8 (kept, flagged `invalid_utf8`).
    pub invalid_utf8: Counter,
    /// Connections open now.
    pub open_connections: Gauge,
    dropped: Family<InputReasonLabel, Counter>,
    connections: Family<InputResultLabel, Counter>,
    closed: Family<InputReasonLabel, Counter>,
    requests: Family<InputResultLabel, Counter>,
}

impl InputMetrics {
    fn label(&self, reason: &'static str) -> InputReasonLabel {
        InputReasonLabel {
            input: self.name.clone(),
            reason,
        }
    }

    /// Counts `n` messages dropped: `inbox_full`, `queue_full`, `storage` (UDP), `shutdown`
    /// (the inbox refused them until the end), `bad_framing`, `rejected` (OTLP records
    /// refused in a `partial_success`), `failed` (a bug).
    pub fn dropped(&self, reason: &'static str, n: u64) {
        self.dropped.get_or_create(&self.label(reason)).inc_by(n);
    }

    /// Counts a connection attempt: `accepted`, `refused` (over `max_connections`),
    /// `handshake_failed`.
    pub fn connection(&self, result: &'static str) {
        let label = InputResultLabel {
            input: self.name.clone(),
            result,
        };
        self.connections.get_or_create(&label).inc();
    }

    /// Counts an HTTP request by its answer: `accepted`, `partial` (OTLP: some records
    /// refused), `bad_request`, `unauthorized`, `too_large`, `unsupported_media_type`,
    /// `not_found`, `timeout` (body not received in time), `throttled` (inbox full),
    /// `unavailable` (inbox not writable), `failed` (a bug).
    pub fn request(&self, result: &'static str) {
        let label = InputResultLabel {
            input: self.name.clone(),
            result,
        };
        self.requests.get_or_create(&label).inc();
    }

    /// Counts a connection closed by either side: `eof`, `idle_timeout`, `slow_client`,
    /// `bad_framing`, `error`, `shutdown`.
    pub fn closed(&self, reason: &'static str) {
        self.closed.get_or_create(&self.label(reason)).inc();
    }
}

/// Every metric the aggregator exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Batches by outcome.
    pub ingest_batches: Family<ResultLabel, Counter>,
    /// Events accepted from agents.
    pub ingest_events: Counter,
    /// Request body bytes received (compressed).
    pub ingest_bytes: Counter,
    /// Requests refused for a missing or wrong token.
    pub auth_failures: Counter,
    /// Events written per sink.
    pub sink_events: Family<SinkLabel, Counter>,
    /// Write or flush errors per sink.
    pub sink_errors: Family<SinkLabel, Counter>,
    /// Stored batches that could not be decoded (damaged on disk) and were dropped.
    pub inbox_corrupt_frames: Counter,
    /// Bytes of batches waiting in the inbox.
    pub inbox_bytes: Gauge,
    /// Events parsed, per format.
    pub parse_events: Family<FormatLabel, Counter>,
    /// Lines that did not parse as expected and were kept as plain text.
    pub parse_errors: Counter,
    /// Events dropped by rules (drop, sample, rate limit).
    pub rules_dropped_events: Counter,
    /// Frames the search store's feed dropped because it lagged.
    pub search_dropped_batches: Counter,
    /// Seconds the pipeline spent per stage: which of sinks, disk and parsing holds the
    /// pipeline back.
    pub pipeline_seconds: Family<StageLabel, Counter<f64, AtomicU64>>,
    /// Inputs' messages received (see [`InputMetrics`]).
    pub input_messages: Family<InputLabel, Counter>,
    /// Inputs' bytes read.
    pub input_bytes: Family<InputLabel, Counter>,
    /// Inputs' messages truncated.
    pub input_truncated: Family<InputLabel, Counter>,
    /// Inputs' messages with invalid UTF-8.
    pub input_invalid_utf8: Family<InputLabel, Counter>,
    /// Inputs' messages dropped, by reason.
    pub input_dropped: Family<InputReasonLabel, Counter>,
    /// Inputs' connection attempts, by result.
    pub input_connections: Family<InputResultLabel, Counter>,
    /// Inputs' connections closed, by reason.
    pub input_closed: Family<InputReasonLabel, Counter>,
    /// Inputs' open connections.
    pub input_open_connections: Family<InputLabel, Gauge>,
    /// HTTP inputs' requests, by answer.
    pub input_requests: Family<InputResultLabel, Counter>,
    /// Queued sinks' delivery metrics.
    pub delivery: crate::sink::delivery::DeliveryFamilies,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("logferry");
        let m = Metrics {
            registry: Registry::default(),
            ingest_batches: Family::default(),
            ingest_events: Counter::default(),
            ingest_bytes: Counter::default(),
            auth_failures: Counter::default(),
            sink_events: Family::default(),
            sink_errors: Family::default(),
            inbox_corrupt_frames: Counter::default(),
            inbox_bytes: Gauge::default(),
            parse_events: Family::default(),
            parse_errors: Counter::default(),
            rules_dropped_events: Counter::default(),
            search_dropped_batches: Counter::default(),
            pipeline_seconds: Family::default(),
            input_messages: Family::default(),
            input_bytes: Family::default(),
            input_truncated: Family::default(),
            input_invalid_utf8: Family::default(),
            input_dropped: Family::default(),
            input_connections: Family::default(),
            input_closed: Family::default(),
            input_open_connections: Family::default(),
            input_requests: Family::default(),
            delivery: Default::default(),
        };
        m.delivery.register(&mut registry);
        registry.register(
            "ingest_batches",
            "Batches received from agents, by result",
            m.ingest_batches.clone(),
        );
        registry.register(
            "ingest_events",
            "Events accepted from agents",
            m.ingest_events.clone(),
        );
        registry.register(
            "ingest_bytes",
            "Request body bytes received from agents (compressed)",
            m.ingest_bytes.clone(),
        );
        registry.register(
            "ingest_auth_failures",
            "Ingest requests refused for a missing or wrong token",
            m.auth_failures.clone(),
        );
        registry.register(
            "sink_events",
            "Events written, per sink",
            m.sink_events.clone(),
        );
        registry.register(
            "sink_errors",
            "Write or flush errors, per sink",
            m.sink_errors.clone(),
        );
        registry.register(
            "inbox_corrupt_frames",
            "Stored batches that could not be decoded and were dropped",
            m.inbox_corrupt_frames.clone(),
        );
        registry.register(
            "inbox_bytes",
            "Bytes of batches waiting in the inbox",
            m.inbox_bytes.clone(),
        );
        registry.register(
            "parse_events",
            "Events parsed, per format",
            m.parse_events.clone(),
        );
        registry.register(
            "parse_errors",
            "Lines that did not parse as expected and were kept as plain text",
            m.parse_errors.clone(),
        );
        registry.register(
            "rules_dropped_events",
            "Events dropped by rules (drop, sample and rate limit actions)",
            m.rules_dropped_events.clone(),
        );
        registry.register(
            "search_dropped_batches",
            "Batches not indexed for log search because the search feed lagged (they reached the sinks)",
            m.search_dropped_batches.clone(),
        );
        registry.register(
            "pipeline_stage_seconds",
            "Seconds the pipeline spent writing to sinks, syncing and waiting for workers (coordinator), and idle (workers)",
            m.pipeline_seconds.clone(),
        );
        registry.register(
            "input_messages",
            "Messages received by an input (admitted or dropped)",
            m.input_messages.clone(),
        );
        registry.register(
            "input_bytes",
            "Bytes read by an input from the network",
            m.input_bytes.clone(),
        );
        registry.register(
            "input_truncated_messages",
            "Messages longer than the input's max_message_bytes, cut to it",
            m.input_truncated.clone(),
        );
        registry.register(
            "input_invalid_utf8_messages",
            "Messages that are not valid UTF-8 (kept, flagged invalid_utf8)",
            m.input_invalid_utf8.clone(),
        );
        registry.register(
            "input_dropped_messages",
            "Messages an input dropped, by reason",
            m.input_dropped.clone(),
        );
        registry.register(
            "input_connections",
            "Connection attempts on an input, by result",
            m.input_connections.clone(),
        );
        registry.register(
            "input_closed_connections",
            "Connections an input closed or saw closed, by reason",
            m.input_closed.clone(),
        );
        registry.register(
            "input_open_connections",
            "Connections open on an input",
            m.input_open_connections.clone(),
        );
        registry.register(
            "input_requests",
            "Requests to an HTTP input (http, otlp), by answer",
            m.input_requests.clone(),
        );
        registry.register_collector(Box::new(collectors::ProcessMetrics));
        Metrics { registry, ..m }
    }

    /// Adds a collector read at every scrape (before the metrics are shared).
    pub fn register_collector(&mut self, c: Box<dyn prometheus_client::collector::Collector>) {
        self.registry.register_collector(c);
    }

    /// The metrics of input `name`, resolved once.
    pub fn input(&self, name: &str) -> InputMetrics {
        let label = InputLabel {
            input: name.to_owned(),
        };
        InputMetrics {
            name: name.to_owned(),
            messages: self.input_messages.get_or_create(&label).clone(),
            bytes: self.input_bytes.get_or_create(&label).clone(),
            truncated: self.input_truncated.get_or_create(&label).clone(),
            invalid_utf8: self.input_invalid_utf8.get_or_create(&label).clone(),
            open_connections: self.input_open_connections.get_or_create(&label).clone(),
            dropped: self.input_dropped.clone(),
            connections: self.input_connections.clone(),
            closed: self.input_closed.clone(),
            requests: self.input_requests.clone(),
        }
    }

    /// Adds the time since `since` to a pipeline stage.
    pub fn pipeline_time(&self, stage: &'static str, since: std::time::Instant) {
        self.pipeline_seconds
            .get_or_create(&StageLabel { stage })
            .inc_by(since.elapsed().as_secs_f64());
    }

    /// Counts one batch outcome.
    pub fn batch(&self, result: &'static str) {
        self.ingest_batches
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
