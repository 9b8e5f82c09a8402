//! The aggregator's config file (TOML). See README's config reference for every key.
//!
//! Environment overrides use the prefix `LOGFERRY_AGGREGATOR`, e.g.
//! `LOGFERRY_AGGREGATOR__INGEST__LISTEN=0.0.0.0:7400` (see `logferry_shared::config`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use logferry_shared::config::{self, require_file, ConfigError};
use serde::Deserialize;

use crate::notify::config::{validate_alerts, AlertsConfig, NotifierConfig};
use crate::rules::{Clock, Engine, EngineContext, Outbox, RuleConfig, RuleError};

/// Environment override prefix.
pub const ENV_PREFIX: &str = "LOGFERRY_AGGREGATOR";

/// The whole aggregator config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregatorConfig {
    /// Where the aggregator keeps its state (the inbox, in `<data_dir>/inbox`).
    pub data_dir: PathBuf,
    /// The agents' HTTPS endpoint.
    pub ingest: IngestConfig,
    /// The admin HTTP endpoint.
    #[serde(default)]
    pub admin: AdminConfig,
    /// The durable inbox of accepted batches.
    #[serde(default)]
    pub inbox: InboxConfig,
    /// How lines are parsed.
    #[serde(default)]
    pub parse: ParseConfig,
    /// How the pipeline runs.
    #[serde(default)]
    pub pipeline: PipelineConfig,
    /// Named sinks; every event goes to every sink unless a rule routes it.
    pub sinks: BTreeMap<String, SinkConfig>,
    /// Rules, in evaluation order (see [`crate::rules`]). Changes made at run time through
    /// the rules API are persisted and win over these after the first change.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Delivery settings for notifications.
    #[serde(default)]
    pub alerts: AlertsConfig,
    /// Named notifiers that `notify` and `alert` actions name.
    #[serde(default)]
    pub notifiers: BTreeMap<String, NotifierConfig>,
    /// Traffic summaries.
    #[serde(default)]
    pub stats: StatsConfig,
    /// The local store of recent events behind log search (`GET /api/logs`).
    #[serde(default)]
    pub search: crate::search::SearchConfig,
    /// Listeners for clients that are not agents (syslog); see [`crate::input`].
    #[serde(default)]
    pub inputs: Vec<crate::input::InputConfig>,
}

/// `[stats]`: the traffic summaries (`GET /api/stats`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsConfig {
    /// Interval length, at least 1 s. Default `10s`.
    #[serde(default = "default_stats_interval", with = "humantime_serde")]
    pub interval: std::time::Duration,
    /// Closed intervals kept. Default 360 (an hour of 10 s intervals).
    #[serde(default = "default_stats_keep")]
    pub keep: usize,
    /// Distinct values counted per dimension (source, host, namespace, section) in an
    /// interval; more are counted as `other`. Default 1000.
    #[serde(default = "default_stats_max_keys")]
    pub max_keys: usize,
    /// Values listed per dimension. Default 10.
    #[serde(default = "default_stats_top")]
    pub top: usize,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            interval: default_stats_interval(),
            keep: default_stats_keep(),
            max_keys: default_stats_max_keys(),
            top: default_stats_top(),
        }
    }
}

impl StatsConfig {
    /// The summaries' settings.
    pub fn settings(&self) -> crate::stats::StatsSettings {
        crate::stats::StatsSettings {
            interval: self.interval,
            keep: self.keep,
            max_keys: self.max_keys,
            top: self.top,
        }
    }
}

fn default_stats_interval() -> std::time::Duration {
    std::time::Duration::from_secs(10)
}
fn default_stats_keep() -> usize {
    360
}
fn default_stats_max_keys() -> usize {
    1000
}
fn default_stats_top() -> usize {
    10
}

/// A rule error as a config error: `rules[2].when.regex: invalid regex ... (rule `x`)`.
pub fn rule_error(e: RuleError) -> ConfigError {
    match e {
        RuleError::Invalid {
            index,
            rule,
            key,
            message,
        } => ConfigError::invalid(
            format!("rules[{index}].{key}"),
            format!("{message} (rule `{rule}`)"),
        ),
        other => ConfigError::invalid("rules", other.to_string()),
    }
}

/// `[parse]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParseConfig {
    /// Zone for timestamps that carry none: `UTC` (default), an offset like `+02:00`, or an
    /// IANA name like `Europe/Berlin`.
    #[serde(default = "default_zone")]
    pub zone: String,
    /// Formats forced per source, first match wins; other sources are auto-detected.
    #[serde(default)]
    pub sources: Vec<SourceFormatConfig>,
    /// User-defined formats.
    #[serde(default)]
    pub custom: Vec<CustomFormatConfig>,
}

impl Default for ParseConfig {
    fn default() -> Self {
        ParseConfig {
            zone: default_zone(),
            sources: Vec::new(),
            custom: Vec::new(),
        }
    }
}

fn default_zone() -> String {
    "UTC".to_owned()
}

/// `[[parse.sources]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceFormatConfig {
    /// Glob over the event's `source.path`.
    pub path: String,
    /// A format name (`json`, `logfmt`, `access`, ..., a custom name) or `auto`.
    pub format: String,
}

/// `[[parse.custom]]`: exactly one of `regex` and `grok`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomFormatConfig {
    /// The format's name.
    pub name: String,
    /// A regex with named groups (`timestamp`, `level`, `message`, others become fields).
    #[serde(default)]
    pub regex: Option<String>,
    /// A grok pattern such as `%{TIMESTAMP_ISO8601:timestamp} %{LOGLEVEL:level} %{GREEDYDATA:message}`.
    #[serde(default)]
    pub grok: Option<String>,
}

impl AggregatorConfig {
    /// Builds the parser detector this config describes.
    pub fn detector(&self) -> Result<crate::parse::detect::Detector, ConfigError> {
        use crate::parse::custom::CustomPattern;
        use crate::parse::detect::{CustomFormat, Detector};
        let zone = crate::parse::Zone::parse(&self.parse.zone)
            .map_err(|e| ConfigError::invalid("parse.zone", e))?;
        let mut custom = Vec::new();
        for (i, c) in self.parse.custom.iter().enumerate() {
            let pattern = match (&c.regex, &c.grok) {
                (Some(r), None) => CustomPattern::Regex(r.clone()),
                (None, Some(g)) => CustomPattern::Grok(g.clone()),
                _ => {
                    return Err(ConfigError::invalid(
                        format!("parse.custom[{i}]"),
                        "set exactly one of regex and grok",
                    ))
                }
            };
            custom.push(CustomFormat {
                name: c.name.clone(),
                pattern,
            });
        }
        // Inputs' formats come after the user's entries, which therefore win.
        let sources: Vec<(String, String)> = self
            .parse
            .sources
            .iter()
            .map(|s| (s.path.clone(), s.format.clone()))
            .chain(self.inputs.iter().filter_map(|i| i.forced_format()))
            .collect();
        Detector::new(zone, &sources, &custom).map_err(|e| match e.split_once(": ") {
            Some((key, msg)) => ConfigError::invalid(self.input_key(key), msg),
            None => ConfigError::invalid("parse", e),
        })
    }

    /// `parse.sources[N].format` for an entry past the user's that came from an input
    /// names that input's `format` instead.
    fn input_key(&self, key: &str) -> String {
        let n = key
            .strip_prefix("parse.sources[")
            .and_then(|r| r.split_once(']'))
            .and_then(|(n, _)| n.parse::<usize>().ok());
        let forced = self
            .inputs
            .iter()
            .enumerate()
            .filter(|(_, i)| i.forced_format().is_some());
        match n.and_then(|n| n.checked_sub(self.parse.sources.len())) {
            Some(k) => forced
                .map(|(j, _)| format!("inputs[{j}].format"))
                .nth(k)
                .unwrap_or_else(|| key.to_owned()),
            None => key.to_owned(),
        }
    }
}

/// `[inbox]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxConfig {
    /// Most bytes of accepted, unprocessed batches; above it ingest answers 429.
    /// Default 256 MiB.
    #[serde(default = "default_inbox_max_bytes")]
    pub max_bytes: u64,
}

impl Default for InboxConfig {
    fn default() -> Self {
        InboxConfig {
            max_bytes: default_inbox_max_bytes(),
        }
    }
}

fn default_inbox_max_bytes() -> u64 {
    256 << 20
}

/// `[pipeline]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Threads that decode, parse and render batches in parallel (writes to the sinks stay
    /// in order on one thread). Default: the number of CPUs available to the process.
    #[serde(default = "default_workers")]
    pub workers: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            workers: default_workers(),
        }
    }
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Most pipeline workers accepted.
const MAX_WORKERS: usize = 256;

/// `[ingest]`: where agents send batches.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Listen address, default `0.0.0.0:7400`.
    #[serde(default = "default_ingest_listen")]
    pub listen: SocketAddr,
    /// TLS material; ingest is always TLS.
    pub tls: ListenerTlsConfig,
    /// Accepted agent tokens (`Authorization: Bearer <token>`).
    #[serde(default)]
    pub tokens: Vec<String>,
    /// Files each holding one accepted token (trailing newline ignored).
    #[serde(default)]
    pub token_files: Vec<PathBuf>,
    /// Largest request body accepted (compressed frame), bytes. Default 16 MiB.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Largest decompressed batch body, bytes. Default 64 MiB.
    #[serde(default = "default_max_decompressed_bytes")]
    pub max_decompressed_bytes: usize,
    /// Most connections served at once; more wait in the kernel's backlog. Default 1024.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

/// `[ingest.tls]` and `[admin.tls]`: a listener's TLS material.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTlsConfig {
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
    /// When set, clients (agents on ingest) must present a certificate signed by this CA
    /// (mTLS).
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

impl ListenerTlsConfig {
    /// Checks the files exist; `key` is the table's place (`ingest.tls`).
    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        require_file(&format!("{key}.cert"), &self.cert)?;
        require_file(&format!("{key}.key"), &self.key)?;
        if let Some(ca) = &self.client_ca {
            require_file(&format!("{key}.client_ca"), ca)?;
        }
        Ok(())
    }

    /// The rustls server config (shared TLS helpers: ring, ALPN h2 and HTTP/1.1).
    pub fn server_config(&self) -> Result<rustls::ServerConfig, logferry_shared::tls::TlsError> {
        logferry_shared::tls::server_config(&self.cert, &self.key, self.client_ca.as_deref())
    }
}

/// `[admin]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Listen address, default `127.0.0.1:7401`.
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
    /// API tokens and their roles (see [`crate::admin::auth`]). Without any, the API is
    /// open on a loopback listener and refused on any other.
    #[serde(default)]
    pub tokens: Vec<crate::admin::AdminTokenConfig>,
    /// When set, the admin endpoint speaks HTTPS only (with `client_ca`, clients must
    /// also present a certificate signed by it).
    #[serde(default)]
    pub tls: Option<ListenerTlsConfig>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: default_admin_listen(),
            tokens: Vec::new(),
            tls: None,
        }
    }
}

/// One sink, selected by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkConfig {
    /// Appends JSON lines to a local file, rotating it by size or time.
    File(crate::sink::file::FileSinkConfig),
    /// Writes JSON lines to standard output.
    Stdout {},
    /// POSTs batches of JSON lines to an HTTP endpoint, from its own durable queue.
    Http(Box<crate::sink::http::HttpSinkConfig>),
    /// Sends events to AWS CloudWatch Logs, from its own durable queue.
    CloudwatchLogs(Box<crate::sink::cloudwatch::CloudWatchConfig>),
    /// Sends events to an Azure Event Hub, from its own durable queue.
    Eventhubs(Box<crate::sink::eventhubs::EventHubsConfig>),
}

impl SinkConfig {
    /// The sink's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            SinkConfig::File(_) => "file",
            SinkConfig::Stdout {} => "stdout",
            SinkConfig::Http(_) => "http",
            SinkConfig::CloudwatchLogs(_) => "cloudwatch_logs",
            SinkConfig::Eventhubs(_) => "eventhubs",
        }
    }

    /// The queue and retry settings of a sink that sends to a service from its own
    /// durable queue; `None` for `file` and `stdout`, which the pipeline writes directly.
    pub fn queued(
        &self,
    ) -> Option<(
        &crate::sink::queue::QueueConfig,
        &crate::sink::queue::RetryConfig,
    )> {
        match self {
            SinkConfig::File(_) | SinkConfig::Stdout {} => None,
            SinkConfig::Http(c) => Some((&c.queue, &c.retry)),
            SinkConfig::CloudwatchLogs(c) => Some((&c.queue, &c.retry)),
            SinkConfig::Eventhubs(c) => Some((&c.queue, &c.retry)),
        }
    }
}

fn default_ingest_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 7400))
}
fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7401))
}
fn default_max_body_bytes() -> usize {
    16 << 20
}
fn default_max_decompressed_bytes() -> usize {
    64 << 20
}
fn default_max_connections() -> usize {
    1024
}

impl AggregatorConfig {
    /// Loads and validates the config at `path`.
    pub fn load(path: &Path) -> Result<AggregatorConfig, ConfigError> {
        let cfg: AggregatorConfig = config::load(path, ENV_PREFIX)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what serde cannot: files exist, limits are sane, some auth is configured.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let tls = &self.ingest.tls;
        tls.validate("ingest.tls")?;
        if let Some(admin) = &self.admin.tls {
            admin.validate("admin.tls")?;
        }
        for (i, f) in self.ingest.token_files.iter().enumerate() {
            require_file(&format!("ingest.token_files[{i}]"), f)?;
        }
        if self.ingest.tokens.iter().any(|t| t.trim().is_empty()) {
            return Err(ConfigError::invalid(
                "ingest.tokens",
                "tokens must not be empty",
            ));
        }
        if self.ingest.tokens.is_empty()
            && self.ingest.token_files.is_empty()
            && tls.client_ca.is_none()
        {
            return Err(ConfigError::invalid(
                "ingest.tokens",
                "no agent authentication configured: set tokens, token_files or tls.client_ca",
            ));
        }
        if self.ingest.max_body_bytes < 1024 {
            return Err(ConfigError::invalid(
                "ingest.max_body_bytes",
                "must be at least 1024",
            ));
        }
        if self.ingest.max_decompressed_bytes < self.ingest.max_body_bytes {
            return Err(ConfigError::invalid(
                "ingest.max_decompressed_bytes",
                "must be at least ingest.max_body_bytes",
            ));
        }
        if self.ingest.max_connections == 0 {
            return Err(ConfigError::invalid(
                "ingest.max_connections",
                "must be at least 1",
            ));
        }
        if self.inbox.max_bytes < self.ingest.max_body_bytes as u64 {
            return Err(ConfigError::invalid(
                "inbox.max_bytes",
                "must be at least ingest.max_body_bytes",
            ));
        }
        if self.sinks.is_empty() {
            return Err(ConfigError::invalid("sinks", "configure at least one sink"));
        }
        for (name, sink) in &self.sinks {
            // What a sink checks when it is built (names, limits, URLs), without connecting.
            let checked = match sink {
                SinkConfig::File(c) => c.validate(),
                SinkConfig::Stdout {} => Ok(()),
                SinkConfig::Http(c) => crate::sink::http::HttpSink::new(c).map(drop),
                SinkConfig::CloudwatchLogs(c) => c.validate(),
                SinkConfig::Eventhubs(c) => c.check(),
            };
            if let Err(e) = checked {
                return Err(ConfigError::invalid(
                    format!("sinks.{name}"),
                    format!("{e:#}"),
                ));
            }
            if let Some((queue, retry)) = sink.queued() {
                queue.validate().map_err(|(key, message)| {
                    ConfigError::invalid(format!("sinks.{name}.queue.{key}"), message)
                })?;
                retry.validate().map_err(|(key, message)| {
                    ConfigError::invalid(format!("sinks.{name}.retry.{key}"), message)
                })?;
            }
        }
        if !(1..=MAX_WORKERS).contains(&self.pipeline.workers) {
            return Err(ConfigError::invalid(
                "pipeline.workers",
                format!("must be between 1 and {MAX_WORKERS}"),
            ));
        }
        for (i, t) in self.admin.tokens.iter().enumerate() {
            t.validate(&format!("admin.tokens[{i}]"))?;
        }
        crate::input::validate(&self.inputs, self.ingest.max_body_bytes)?;
        self.detector()?;
        if self.stats.interval < std::time::Duration::from_secs(1) {
            return Err(ConfigError::invalid(
                "stats.interval",
                "must be at least 1s",
            ));
        }
        for (key, v) in [
            ("stats.keep", self.stats.keep),
            ("stats.max_keys", self.stats.max_keys),
            ("stats.top", self.stats.top),
        ] {
            if v == 0 {
                return Err(ConfigError::invalid(key, "must be at least 1"));
            }
        }
        self.search.validate()?;
        validate_alerts(&self.alerts)?;
        for (name, n) in &self.notifiers {
            n.validate(&format!("notifiers.{name}"))?;
        }
        let outbox = Arc::new(Outbox::new(1));
        let ctx = self.rules_context(Arc::new(crate::rules::SystemClock), outbox);
        Engine::build(&self.rules, &ctx, None).map_err(rule_error)?;
        Ok(())
    }

    /// What the rules engine needs from the config: sink names in the pipeline's order
    /// (sorted, as `[sinks]` is iterated), notifier names, a clock and the outbox.
    pub fn rules_context(&self, clock: Arc<dyn Clock>, outbox: Arc<Outbox>) -> EngineContext {
        EngineContext {
            sinks: self.sinks.keys().cloned().collect(),
            notifiers: self.notifiers.keys().cloned().collect(),
            clock,
            outbox,
        }
    }

    /// All accepted agent tokens: inline ones and those read from `token_files`.
    pub fn agent_tokens(&self) -> Result<Vec<String>, ConfigError> {
        let mut tokens = self.ingest.tokens.clone();
        for (i, f) in self.ingest.token_files.iter().enumerate() {
            let t = config::read_secret_file(f).map_err(|e| {
                ConfigError::invalid(
                    format!("ingest.token_files[{i}]"),
                    format!("{}: {e}", f.display()),
                )
            })?;
            if t.trim().is_empty() {
                return Err(ConfigError::invalid(
                    format!("ingest.token_files[{i}]"),
                    "file is empty",
                ));
            }
            tokens.push(t);
        }
        Ok(tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AggregatorConfig, ConfigError> {
        let cfg: AggregatorConfig = config::from_str(text, "t.toml", &[], ENV_PREFIX)?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn with_certs(extra: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.pem"), "x").unwrap();
        std::fs::write(dir.path().join("k.pem"), "x").unwrap();
        let d = dir.path().display();
        let text = format!(
            "data_dir = \"{d}/data\"\n[ingest]\ntokens = [\"t\"]\n[ingest.tls]\ncert = \"{d}/c.pem\"\nkey = \"{d}/k.pem\"\n{extra}"
        );
        (dir, text)
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let (_d, text) = with_certs("[sinks.out]\ntype = \"file\"\npath = \"/tmp/x\"\n");
        let cfg = parse(&text).unwrap();
        assert_eq!(cfg.ingest.listen.port(), 7400);
        assert_eq!(cfg.admin.listen.to_string(), "127.0.0.1:7401");
        assert!(matches!(cfg.sinks["out"], SinkConfig::File(_)));
    }

    #[test]
    fn unknown_sink_key_and_type_are_named() {
        let (_d, text) =
            with_certs("[sinks.out]\ntype = \"file\"\npath = \"/tmp/x\"\nrotate = true\n");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.starts_with("sinks.out"), "{err}");
        assert!(err.contains("rotate"), "{err}");
        let (_d, text) = with_certs("[sinks.out]\ntype = \"kafka\"\n");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("kafka"), "{err}");
    }

    #[test]
    fn admin_tls_is_optional_and_its_files_are_checked() {
        let (d, text) = with_certs("[sinks.o]\ntype = \"stdout\"\n");
        assert_eq!(parse(&text).unwrap().admin.tls, None);
        let dir = d.path().display();
        let tls = format!(
            "[admin.tls]\ncert = \"{dir}/c.pem\"\nkey = \"{dir}/k.pem\"\nclient_ca = \"{dir}/c.pem\"\n"
        );
        let cfg = parse(&format!("{text}{tls}")).unwrap();
        let t = cfg.admin.tls.unwrap();
        assert_eq!(t.cert, d.path().join("c.pem"));
        assert_eq!(t.client_ca, Some(d.path().join("c.pem")));
        let missing = tls.replace("k.pem", "nokey.pem");
        let err = parse(&format!("{text}{missing}")).unwrap_err().to_string();
        assert!(err.starts_with("admin.tls.key:"), "{err}");
        let typo = format!(
            "{text}[admin.tls]\ncert = \"{dir}/c.pem\"\nkey = \"{dir}/k.pem\"\nca = \"x\"\n"
        );
        let err = parse(&typo).unwrap_err().to_string();
        assert!(err.contains("admin.tls") && err.contains("ca"), "{err}");
    }

    #[test]
    fn missing_cert_and_missing_auth_are_named() {
        let text = "data_dir = \"/d\"\n[ingest]\ntokens = [\"t\"]\n[ingest.tls]\ncert = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/k.pem\"\n[sinks.o]\ntype = \"stdout\"\n";
        let err = parse(text).unwrap_err().to_string();
        assert!(
            err.starts_with("ingest.tls.cert: /nonexistent/c.pem"),
            "{err}"
        );

        let (_d, text) = with_certs("[sinks.o]\ntype = \"stdout\"\n");
        let text = text.replace("tokens = [\"t\"]\n", "");
        let err = parse(&text).unwrap_err().to_string();
        assert!(
            err.starts_with("ingest.tokens: no agent authentication"),
            "{err}"
        );
    }

    #[test]
    fn file_sink_rotation_settings_are_checked_and_named() {
        let sink = "[sinks.out]\ntype = \"file\"\npath = \"/tmp/x\"\n";
        let (_d, text) = with_certs(&format!("{sink}max_bytes = 1048576\nkeep = 2\n"));
        assert!(parse(&text).is_ok());
        let (_d, text) = with_certs(&format!("{sink}max_bytes = 10\n"));
        assert_eq!(
            parse(&text).unwrap_err().to_string(),
            "sinks.out: max_bytes = 10 must be at least 4096"
        );
    }

    #[test]
    fn sink_retry_waits_are_checked_and_named() {
        let sink =
            "[sinks.hook]\ntype = \"http\"\nurl = \"http://127.0.0.1:9/\"\n[sinks.hook.retry]\n";
        let (_d, text) = with_certs(&format!(
            "{sink}initial_backoff = \"1s\"\nmax_backoff = \"1s\"\n"
        ));
        assert!(parse(&text).is_ok());
        for (retry, want) in [
            (
                "max_backoff = \"0s\"",
                "sinks.hook.retry.max_backoff: must be more than 0",
            ),
            (
                "initial_backoff = \"0s\"",
                "sinks.hook.retry.initial_backoff: must be more than 0",
            ),
            (
                "initial_backoff = \"2m\"\nmax_backoff = \"1m\"",
                "sinks.hook.retry.initial_backoff: 2m is longer than max_backoff (1m)",
            ),
            // Only max_backoff given, below the default initial_backoff (200ms).
            (
                "max_backoff = \"100ms\"",
                "sinks.hook.retry.initial_backoff: 200ms is longer than max_backoff (100ms)",
            ),
        ] {
            let (_d, text) = with_certs(&format!("{sink}{retry}\n"));
            assert_eq!(parse(&text).unwrap_err().to_string(), want, "{retry}");
        }
        let cw = "[sinks.cw]\ntype = \"cloudwatch_logs\"\ngroup = \"g\"\nstream = \"s\"\n[sinks.cw.retry]\nmax_backoff = \"0s\"\n";
        let (_d, text) = with_certs(cw);
        assert_eq!(
            parse(&text).unwrap_err().to_string(),
            "sinks.cw.retry.max_backoff: must be more than 0"
        );
    }

    #[test]
    fn sink_queue_limits_are_checked_and_named() {
        let sink =
            "[sinks.hook]\ntype = \"http\"\nurl = \"http://127.0.0.1:9/\"\n[sinks.hook.queue]\n";
        let (_d, text) = with_certs(&format!(
            "{sink}max_bytes = 1048576\nbatch_wait = \"0s\"\nstuck_after = \"1s\"\n"
        ));
        assert!(parse(&text).is_ok());
        for (queue, want) in [
            (
                "max_bytes = 0",
                "sinks.hook.queue.max_bytes: 0 is below the smallest queue, 1048576 bytes (1 MiB)",
            ),
            (
                "dead_letter_max_bytes = 1000",
                "sinks.hook.queue.dead_letter_max_bytes: 1000 is below the smallest queue, 1048576 bytes (1 MiB)",
            ),
            (
                "stuck_after = \"0s\"",
                "sinks.hook.queue.stuck_after: must be more than 0",
            ),
            (
                "batch_wait = \"10m\"",
                "sinks.hook.queue.batch_wait: 10m is not shorter than stuck_after (5m): every waiting batch would make the sink look stuck",
            ),
        ] {
            let (_d, text) = with_certs(&format!("{sink}{queue}\n"));
            assert_eq!(parse(&text).unwrap_err().to_string(), want, "{queue}");
        }
    }

    #[test]
    fn no_sinks_is_an_error() {
        let (_d, text) = with_certs("[sinks]\n");
        assert_eq!(
            parse(&text).unwrap_err().to_string(),
            "sinks: configure at least one sink"
        );
    }

    #[test]
    fn pipeline_workers_default_to_the_cpus_and_are_checked() {
        let sink = "[sinks.out]\ntype = \"file\"\npath = \"/tmp/x\"\n";
        let (_d, text) = with_certs(sink);
        assert!(parse(&text).unwrap().pipeline.workers >= 1);
        let (_d, text) = with_certs(&format!("[pipeline]\nworkers = 3\n{sink}"));
        assert_eq!(parse(&text).unwrap().pipeline.workers, 3);
        let (_d, text) = with_certs(&format!("[pipeline]\nworkers = 0\n{sink}"));
        assert!(parse(&text)
            .unwrap_err()
            .to_string()
            .starts_with("pipeline.workers: must be between 1 and"));
        let (_d, text) = with_certs(&format!("[pipeline]\nworker = 2\n{sink}"));
        assert!(parse(&text).unwrap_err().to_string().contains("worker"));
    }

    const SINK: &str = "[sinks.out]\ntype = \"file\"\npath = \"/tmp/x\"\n";

    #[test]
    fn rules_and_notifiers_from_the_readme_example_validate() {
        let (_d, text) = with_certs(&format!(
            r#"{SINK}
[[rules]]
name = "drop-health-checks"
when = {{ all = [{{ field = "path", starts_with = "/healthz" }}, {{ field = "status", lt = 400 }}] }}
actions = [{{ type = "drop" }}]

[[rules]]
name = "high-traffic"
when = {{ field = "format", equals = "access" }}
actions = [{{ type = "alert", notifier = "oncall", window = "2m", rate_above = 10.0 }}]

[[rules]]
name = "errors-to-out"
when = {{ field = "level", gte = "error" }}
actions = [{{ type = "route", sinks = ["out"] }}, {{ type = "notify", notifier = "hook" }}]

[alerts]
per_rule_limit = 3

[notifiers.oncall]
type = "slack"
webhook_url = "https://hooks.slack.example/T/B/x"

[notifiers.hook]
type = "webhook"
url = "http://127.0.0.1:9/x"
headers = {{ "X-Team" = "sre" }}
"#
        ));
        let cfg = parse(&text).unwrap();
        assert_eq!(cfg.rules.len(), 3);
        assert_eq!(cfg.alerts.per_rule_limit, 3);
        assert_eq!(cfg.notifiers.len(), 2);
    }

    #[test]
    fn a_bad_rule_names_the_key_path_and_the_rule() {
        let cases = [
            (
                "[[rules]]\nname = \"ok\"\nactions = [{ type = \"drop\" }]\n[[rules]]\nname = \"static\"\nwhen = { field = \"path\", regex = \"([\" }\nactions = [{ type = \"drop\" }]\n",
                "rules[1].when.regex: invalid regex",
                "(rule `static`)",
            ),
            (
                "[[rules]]\nname = \"r\"\nactions = [{ type = \"route\", sinks = [\"s3\"] }]\n",
                "rules[0].actions[0].sinks[0]: no sink named `s3` (configured: out)",
                "(rule `r`)",
            ),
            (
                "[[rules]]\nname = \"r\"\nactions = [{ type = \"notify\", notifier = \"pager\" }]\n",
                "rules[0].actions[0].notifier: no notifier named `pager` (configured: none)",
                "(rule `r`)",
            ),
            (
                "[[rules]]\nname = \"r\"\nactions = [{ type = \"sample\", every = 10 }]\n",
                "rules[0].actions[0]",
                "every",
            ),
        ];
        for (rules, key, detail) in cases {
            let (_d, text) = with_certs(&format!("{SINK}{rules}"));
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.starts_with(key), "{err}\n  wanted: {key}");
            assert!(err.contains(detail), "{err}\n  wanted: {detail}");
        }
    }

    #[test]
    fn notifier_and_alerts_errors_name_the_key() {
        let cases = [
            ("[notifiers.oncall]\ntype = \"slack\"\n", "notifiers.oncall.webhook_url: set one of"),
            ("[notifiers.oncall]\ntype = \"slack\"\nwebhook_url = \"x\"\nwebhook_url_env = \"Y\"\n", "notifiers.oncall.webhook_url: set only one of"),
            ("[notifiers.h]\ntype = \"webhook\"\nurl = \"ftp://x\"\n", "notifiers.h.url: must be an http"),
            ("[notifiers.h]\ntype = \"webhook\"\nurl = \"http://x\"\nsecret_file = \"/nonexistent/s\"\n", "notifiers.h.secret_file"),
            ("[notifiers.m]\ntype = \"email\"\nsmtp_host = \"smtp\"\nfrom = \"a@b\"\nto = []\n", "notifiers.m.to: name at least one recipient"),
            ("[notifiers.m]\ntype = \"email\"\nsmtp_host = \"smtp\"\nfrom = \"a@b\"\nto = [\"x\"]\n", "notifiers.m.to[0]: `x` is not an email address"),
            ("[notifiers.m]\ntype = \"email\"\nsmtp_host = \"smtp\"\nfrom = \"a@b\"\nto = [\"c@d\"]\nusername = \"u\"\n", "notifiers.m.password: set one of"),
            ("[notifiers.m]\ntype = \"pager\"\n", "notifiers.m"),
            ("[alerts]\nqueue_max = 0\n", "alerts.queue_max: must be at least 1"),
            ("[alerts]\nper_rule_limt = 2\n", "alerts"),
        ];
        for (extra, want) in cases {
            let (_d, text) = with_certs(&format!("{SINK}{extra}"));
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.starts_with(want), "{err}\n  wanted: {want}");
        }
    }

    #[test]
    fn the_rule_set_and_the_dispatcher_build_from_the_config() {
        let (_d, text) = with_certs(&format!(
            "{SINK}[[rules]]\nname = \"r\"\nactions = [{{ type = \"notify\", notifier = \"hook\" }}]\n[notifiers.hook]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/x\"\n"
        ));
        let cfg = parse(&text).unwrap();
        let outbox = Arc::new(Outbox::new(10));
        let clock: Arc<dyn Clock> = Arc::new(crate::rules::SystemClock);
        let set = crate::rules::RuleSet::from_config(&cfg, clock.clone(), outbox.clone()).unwrap();
        assert_eq!(set.list(), cfg.rules);
        let dispatcher = crate::notify::Dispatcher::from_config(&cfg, outbox, clock).unwrap();
        assert!(dispatcher.queue().is_empty());
    }
}
