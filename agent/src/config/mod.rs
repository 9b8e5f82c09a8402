//! The agent's config file (TOML). See README's config reference for every key.
//!
//! Environment overrides use the prefix `LOGFERRY_AGENT`, e.g.
//! `LOGFERRY_AGENT__OUTPUT__URL=https://aggregator:7400` (see `logferry_shared::config`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use logferry_shared::codec::Codec;
use logferry_shared::config::{self, require_file, ConfigError};
use serde::Deserialize;

/// Environment override prefix.
pub const ENV_PREFIX: &str = "LOGFERRY_AGENT";

/// The whole agent config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Where the spool (batches and checkpoints) lives.
    pub data_dir: PathBuf,
    /// Host name put on every event; default: env `NODE_NAME`, else the system host name.
    #[serde(default)]
    pub host: Option<String>,
    /// Agent id; default: a random id made on first start and kept in the spool.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// Files to tail.
    pub inputs: Vec<InputConfig>,
    /// Where batches go.
    pub output: OutputConfig,
    /// The on-disk spool.
    #[serde(default)]
    pub spool: SpoolConfig,
    /// How files are read.
    #[serde(default)]
    pub tail: TailConfig,
    /// Admin endpoint.
    #[serde(default)]
    pub admin: AdminConfig,
}

/// Where to start in a file that has no checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ReadFrom {
    /// From the first byte.
    #[default]
    Beginning,
    /// From the current end, for files present when the agent starts; files that
    /// appear later are always read from the beginning, so their first lines are kept.
    End,
}

/// Whether an input's files are compressed (`[[inputs]] compression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum InputCompression {
    /// Files are read as they are.
    #[default]
    None,
    /// Every file of the input is gzip-compressed and read decompressed; one that does
    /// not decode is reported and skipped.
    Gzip,
    /// Per file: read decompressed when its name ends in `.gz` or its first bytes are the
    /// gzip magic bytes, as it is otherwise.
    Auto,
}

/// One `[[inputs]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// Glob patterns of files to tail (`*`, `?`, `[...]`, `**`).
    pub include: Vec<String>,
    /// Glob patterns of paths to skip, matched against the full path.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Start position for files without a checkpoint.
    #[serde(default)]
    pub read_from: ReadFrom,
    /// Files not modified for this long when first seen are not tailed (until they
    /// change). Default: no limit.
    #[serde(default, with = "humantime_serde")]
    pub ignore_older: Option<Duration>,
    /// How lines are encoded: `auto` (default; decided per file from its first line),
    /// `raw`, `cri` or `docker`.
    #[serde(default)]
    pub format: crate::container::Format,
    /// Joining multi-line events (stack traces); default: off.
    #[serde(default)]
    pub multiline: Option<crate::multiline::MultilineConfig>,
    /// Whether files are gzip-compressed: `none` (default), `gzip` or `auto`.
    #[serde(default)]
    pub compression: InputCompression,
    /// Name used in metric labels; default `input<N>` (N counted from 0).
    #[serde(default)]
    pub name: Option<String>,
}

/// `[output]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Aggregator base URL, `https://host:port`.
    pub url: String,
    /// TLS settings.
    #[serde(default)]
    pub tls: OutputTlsConfig,
    /// Bearer token.
    #[serde(default)]
    pub token: Option<String>,
    /// File holding the bearer token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Body compression.
    #[serde(default)]
    pub compression: Codec,
    /// Compression level (zstd 1..=19, gzip 0..=9). Default 1 for zstd, 6 for gzip.
    #[serde(default)]
    pub compression_level: Option<i32>,
    /// A batch is sealed when its uncompressed size reaches this. Default 2 MiB: larger
    /// batches cost less CPU per line to compress, ship and acknowledge, and 2 MiB keeps
    /// the agent's memory under 20 MiB (README "Benchmarks"); `spool.max_bytes` must hold
    /// at least one.
    #[serde(default = "default_batch_max_bytes")]
    pub batch_max_bytes: usize,
    /// A non-empty batch is sealed this long after its first line. Default 200ms.
    #[serde(default = "default_batch_timeout", with = "humantime_serde")]
    pub batch_timeout: Duration,
    /// Batches sent concurrently. Default 4.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Timeout of one request. Default 30s.
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// First retry delay. Default 100ms.
    #[serde(default = "default_retry_initial", with = "humantime_serde")]
    pub retry_initial: Duration,
    /// Longest retry delay. Default 30s.
    #[serde(default = "default_retry_max", with = "humantime_serde")]
    pub retry_max: Duration,
}

/// `[output.tls]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputTlsConfig {
    /// CA certificate(s) to trust (PEM); default: the system's trust store.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Client certificate for mTLS (PEM).
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// Client key for mTLS (PEM).
    #[serde(default)]
    pub key: Option<PathBuf>,
}

/// What to do when it is full (the same setting as everywhere else).
pub use logferry_shared::config::WhenFull;

/// `[spool]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Most bytes of batches kept. Default 256 MiB.
    #[serde(default = "default_spool_max_bytes")]
    pub max_bytes: u64,
    /// Policy when full.
    #[serde(default)]
    pub when_full: WhenFull,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            max_bytes: default_spool_max_bytes(),
            when_full: WhenFull::default(),
        }
    }
}

/// `[tail]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailConfig {
    /// How often the include globs are expanded to find new files. Default 1s.
    #[serde(default = "default_scan_interval", with = "humantime_serde")]
    pub scan_interval: Duration,
    /// How long to wait before checking idle files again. Default 100ms.
    #[serde(default = "default_poll_interval", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Longest line kept; the rest of a longer line is dropped and the line flagged
    /// `truncated`. Default 1 MiB.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// A last line without a newline is sent after this long without new data. Default 5s.
    #[serde(default = "default_partial_line_timeout", with = "humantime_serde")]
    pub partial_line_timeout: Duration,
    /// Most files held open at once; further files wait until idle ones are closed.
    /// Default 1024.
    #[serde(default = "default_max_open_files")]
    pub max_open_files: usize,
    /// A file read to its end that stays unchanged this long is closed (its position is
    /// kept; it is reopened when it grows). Default 1m.
    #[serde(default = "default_close_idle_after", with = "humantime_serde")]
    pub close_idle_after: Duration,
    /// A deleted file is read to its end, but held open at most this long after its
    /// deletion was noticed (e.g. while the spool is full because the aggregator is
    /// down); what is left unread then is counted in
    /// `logferry_agent_deleted_unread_bytes_total` and logged. Default 10m.
    #[serde(default = "default_deleted_file_hold", with = "humantime_serde")]
    pub deleted_file_hold: Duration,
    /// How long a file renamed away or deleted is kept open after its last data, for
    /// lines written just after the rotation (Fluent Bit's `Rotate_Wait`). Default 5s.
    #[serde(default = "default_rotate_wait", with = "humantime_serde")]
    pub rotate_wait: Duration,
    /// Watch directories with inotify to find new files at once (the periodic scan stays
    /// as a fallback). Default true.
    #[serde(default = "default_true")]
    pub watch: bool,
    /// A compressed file that ends inside a gzip member is waited for (it is being
    /// written); when it has not grown for this long it is reported as cut short, counted
    /// in `logferry_agent_gzip_incomplete_files_total`. Reading goes on if it grows
    /// later. Default 1m.
    #[serde(default = "default_gzip_incomplete_timeout", with = "humantime_serde")]
    pub gzip_incomplete_timeout: Duration,
}

impl Default for TailConfig {
    fn default() -> Self {
        TailConfig {
            scan_interval: default_scan_interval(),
            poll_interval: default_poll_interval(),
            max_line_bytes: default_max_line_bytes(),
            partial_line_timeout: default_partial_line_timeout(),
            max_open_files: default_max_open_files(),
            close_idle_after: default_close_idle_after(),
            deleted_file_hold: default_deleted_file_hold(),
            rotate_wait: default_rotate_wait(),
            watch: true,
            gzip_incomplete_timeout: default_gzip_incomplete_timeout(),
        }
    }
}

/// `[admin]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Listen address, default `127.0.0.1:7402`.
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: default_admin_listen(),
        }
    }
}

fn default_batch_max_bytes() -> usize {
    2 << 20
}
fn default_batch_timeout() -> Duration {
    Duration::from_millis(200)
}
fn default_max_in_flight() -> usize {
    4
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_retry_initial() -> Duration {
    Duration::from_millis(100)
}
fn default_retry_max() -> Duration {
    Duration::from_secs(30)
}
fn default_spool_max_bytes() -> u64 {
    256 << 20
}
fn default_scan_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_poll_interval() -> Duration {
    Duration::from_millis(100)
}
fn default_max_line_bytes() -> usize {
    1 << 20
}
fn default_partial_line_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_max_open_files() -> usize {
    1024
}
fn default_close_idle_after() -> Duration {
    Duration::from_secs(60)
}
fn default_deleted_file_hold() -> Duration {
    Duration::from_secs(600)
}
fn default_rotate_wait() -> Duration {
    Duration::from_secs(5)
}
fn default_gzip_incomplete_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_true() -> bool {
    true
}
fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7402))
}

impl AgentConfig {
    /// Loads and validates the config at `path`.
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let cfg: AgentConfig = config::load(path, ENV_PREFIX)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.inputs.is_empty() {
            return Err(ConfigError::invalid(
                "inputs",
                "configure at least one input",
            ));
        }
        for (i, input) in self.inputs.iter().enumerate() {
            if input.include.is_empty() {
                return Err(ConfigError::invalid(
                    format!("inputs[{i}].include"),
                    "must not be empty",
                ));
            }
            for (kind, list) in [("include", &input.include), ("exclude", &input.exclude)] {
                for (j, p) in list.iter().enumerate() {
                    if let Err(e) = glob::Pattern::new(p) {
                        return Err(ConfigError::invalid(
                            format!("inputs[{i}].{kind}[{j}]"),
                            format!("bad glob `{p}`: {e}"),
                        ));
                    }
                }
            }
            if let Some(Err(e)) = input.multiline.as_ref().map(|m| m.validate()) {
                let key = match e.key() {
                    Some(k) => format!("inputs[{i}].multiline.{k}"),
                    None => format!("inputs[{i}].multiline"),
                };
                return Err(ConfigError::invalid(key, e.to_string()));
            }
        }
        let out = &self.output;
        if !out.url.starts_with("https://") && !out.url.starts_with("http://") {
            return Err(ConfigError::invalid(
                "output.url",
                "must start with https:// (or http:// behind a TLS proxy)",
            ));
        }
        if out
            .url
            .trim_end_matches('/')
            .split("://")
            .nth(1)
            .is_none_or(str::is_empty)
        {
            return Err(ConfigError::invalid("output.url", "has no host"));
        }
        if out.token.is_some() && out.token_file.is_some() {
            return Err(ConfigError::invalid(
                "output.token_file",
                "set either token or token_file, not both",
            ));
        }
        if out.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(ConfigError::invalid("output.token", "must not be empty"));
        }
        if let Some(f) = &out.token_file {
            require_file("output.token_file", f)?;
        }
        match (&out.tls.cert, &out.tls.key) {
            (Some(c), Some(k)) => {
                require_file("output.tls.cert", c)?;
                require_file("output.tls.key", k)?;
            }
            (None, None) => {}
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    "output.tls.key",
                    "needed with output.tls.cert",
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    "output.tls.cert",
                    "needed with output.tls.key",
                ))
            }
        }
        if let Some(ca) = &out.tls.ca {
            require_file("output.tls.ca", ca)?;
        }
        if let Some(level) = out.compression_level {
            let ok = match out.compression {
                Codec::Zstd => (-7..=19).contains(&level),
                Codec::Gzip => (0..=9).contains(&level),
                Codec::None => true,
            };
            if !ok {
                return Err(ConfigError::invalid(
                    "output.compression_level",
                    format!("{level} is out of range for {}", out.compression.name()),
                ));
            }
        }
        if !(4096..=(32 << 20)).contains(&out.batch_max_bytes) {
            return Err(ConfigError::invalid(
                "output.batch_max_bytes",
                "must be between 4096 and 33554432",
            ));
        }
        if out.max_in_flight == 0 || out.max_in_flight > 64 {
            return Err(ConfigError::invalid(
                "output.max_in_flight",
                "must be between 1 and 64",
            ));
        }
        if out.retry_initial.is_zero() || out.retry_max < out.retry_initial {
            return Err(ConfigError::invalid(
                "output.retry_max",
                "must be at least output.retry_initial, which must be above zero",
            ));
        }
        if self.spool.max_bytes < out.batch_max_bytes as u64 {
            return Err(ConfigError::invalid(
                "spool.max_bytes",
                format!(
                    "must be at least output.batch_max_bytes ({}); lower that too",
                    out.batch_max_bytes
                ),
            ));
        }
        if self.tail.max_line_bytes < 64 {
            return Err(ConfigError::invalid(
                "tail.max_line_bytes",
                "must be at least 64",
            ));
        }
        if self.tail.max_open_files == 0 {
            return Err(ConfigError::invalid(
                "tail.max_open_files",
                "must be at least 1",
            ));
        }
        if self.tail.poll_interval.is_zero() || self.tail.scan_interval.is_zero() {
            return Err(ConfigError::invalid(
                "tail.poll_interval",
                "intervals must be above zero",
            ));
        }
        if self
            .agent_id
            .as_deref()
            .is_some_and(|a| a.is_empty() || a.len() > logferry_shared::wire::MAX_ID_LEN)
        {
            return Err(ConfigError::invalid("agent_id", "must be 1 to 128 bytes"));
        }
        Ok(())
    }

    /// The bearer token, read from `token_file` if that is set.
    pub fn token(&self) -> Result<Option<String>, ConfigError> {
        match (&self.output.token, &self.output.token_file) {
            (Some(t), _) => Ok(Some(t.clone())),
            (None, Some(f)) => config::read_secret_file(f).map(Some).map_err(|e| {
                ConfigError::invalid("output.token_file", format!("{}: {e}", f.display()))
            }),
            (None, None) => Ok(None),
        }
    }

    /// The host name to put on events.
    pub fn host_name(&self) -> String {
        self.host
            .clone()
            .or_else(|| std::env::var("NODE_NAME").ok().filter(|s| !s.is_empty()))
            .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned())
    }

    /// The name of input `i` for metric labels.
    pub fn input_name(&self, i: usize) -> String {
        self.inputs
            .get(i)
            .and_then(|c| c.name.clone())
            .unwrap_or_else(|| format!("input{i}"))
    }

    /// The compression level to use.
    pub fn compression_level(&self) -> i32 {
        self.output
            .compression_level
            .unwrap_or(match self.output.compression {
                Codec::Gzip => 6,
                _ => 1,
            })
    }
}

#[cfg(test)]
mod tests;
