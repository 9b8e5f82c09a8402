//! `[[inputs]] type = "syslog"`: the config a user writes, its defaults and its checks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use logferry_shared::config::{require_file, ConfigError};
use serde::Deserialize;

/// The transport a syslog input listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// RFC 5426: one message per datagram.
    Udp,
    /// RFC 6587: octet counting or line feeds, detected per message.
    Tcp,
    /// RFC 5425: as `tcp`, inside TLS.
    Tls,
}

impl Mode {
    /// `udp`, `tcp` or `tls`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Udp => "udp",
            Mode::Tcp => "tcp",
            Mode::Tls => "tls",
        }
    }
}

/// One syslog listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogInputConfig {
    /// Names the input in metrics (`input` label), logs and `source.path`. Default
    /// `syslog_<mode>`; names must be unique.
    #[serde(default)]
    pub name: Option<String>,
    /// `udp`, `tcp` or `tls`.
    pub mode: Mode,
    /// Address to listen on, e.g. `0.0.0.0:514`.
    pub listen: SocketAddr,
    /// TLS material; required for `mode = "tls"`, refused otherwise.
    #[serde(default)]
    pub tls: Option<SyslogTlsConfig>,
    /// The format the lines are parsed in: `syslog` (default), `auto`, or any format name
    /// (`[[parse.sources]]` entries that match the input's sources come first).
    #[serde(default = "default_format")]
    pub format: String,
    /// Longest message kept, bytes; longer ones are cut to it and flagged `truncated`.
    /// Default 65536 (rsyslog's default is 8096; RFC 5425 asks receivers for 8192).
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Most connections open at once (tcp, tls); more are accepted and closed at once.
    /// Default 512.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed (tcp, tls). Default 10m.
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A connection that leaves a message unfinished for this long is closed and the
    /// partial message kept, flagged `no_newline` (tcp, tls). Default 30s.
    #[serde(default = "default_partial_timeout", with = "humantime_serde")]
    pub partial_timeout: Duration,
    /// udp: the socket's receive buffer (`SO_RCVBUF`), which absorbs bursts while the
    /// input is busy; the kernel caps it at `net.core.rmem_max`. Default 4 MiB.
    #[serde(default = "default_receive_buffer_bytes")]
    pub receive_buffer_bytes: usize,
    /// A batch is sealed into the inbox once it holds this many bytes. Default 1 MiB.
    #[serde(default = "default_batch_max_bytes")]
    pub batch_max_bytes: usize,
    /// ... or once its oldest message has waited this long. Default 200ms.
    #[serde(default = "default_batch_wait", with = "humantime_serde")]
    pub batch_wait: Duration,
}

/// `[inputs.tls]` of a syslog input.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogTlsConfig {
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
    /// When set, senders must present a certificate signed by this CA.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

fn default_format() -> String {
    "syslog".to_owned()
}
fn default_max_message_bytes() -> usize {
    64 << 10
}
fn default_max_connections() -> usize {
    512
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(600)
}
fn default_partial_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_receive_buffer_bytes() -> usize {
    4 << 20
}
fn default_batch_max_bytes() -> usize {
    1 << 20
}
fn default_batch_wait() -> Duration {
    Duration::from_millis(200)
}

/// Smallest `max_message_bytes`: RFC 5424 receivers must take 480-byte messages.
pub const MIN_MESSAGE_BYTES: usize = 480;
/// Largest `max_message_bytes`.
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;
/// Headroom a frame needs over `batch_max_bytes` + one message (record and source
/// overhead, frame header, compression overhead on incompressible data).
pub const FRAME_OVERHEAD: usize = 64 << 10;

impl SyslogInputConfig {
    /// The input's name.
    pub fn name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("syslog_{}", self.mode.name()))
    }

    /// A glob over `source.path` that matches every source of this input and no other's.
    pub fn source_glob(&self) -> String {
        format!(
            "syslog+{}://*/{}",
            self.mode.name(),
            glob::Pattern::escape(&self.name())
        )
    }

    /// Checks the values; `key` is this input's key path (`inputs[0]`). `max_frame_bytes`
    /// is the largest frame the pipeline decodes (`ingest.max_body_bytes`).
    pub fn validate(&self, key: &str, max_frame_bytes: usize) -> Result<(), ConfigError> {
        let k = |field: &str| format!("{key}.{field}");
        if let Some(name) = &self.name {
            crate::input::check_name(&k("name"), name)?;
        }
        match (&self.tls, self.mode) {
            (None, Mode::Tls) => {
                return Err(ConfigError::invalid(
                    k("tls"),
                    "required when mode = \"tls\" (cert and key)",
                ))
            }
            (Some(_), Mode::Udp | Mode::Tcp) => {
                return Err(ConfigError::invalid(
                    k("tls"),
                    format!(
                        "only used with mode = \"tls\" (mode is \"{}\")",
                        self.mode.name()
                    ),
                ))
            }
            (Some(tls), Mode::Tls) => {
                require_file(&k("tls.cert"), &tls.cert)?;
                require_file(&k("tls.key"), &tls.key)?;
                if let Some(ca) = &tls.client_ca {
                    require_file(&k("tls.client_ca"), ca)?;
                }
            }
            (None, _) => {}
        }
        if !(MIN_MESSAGE_BYTES..=MAX_MESSAGE_BYTES).contains(&self.max_message_bytes) {
            return Err(ConfigError::invalid(
                k("max_message_bytes"),
                format!("must be between {MIN_MESSAGE_BYTES} and {MAX_MESSAGE_BYTES}"),
            ));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::invalid(
                k("max_connections"),
                "must be at least 1",
            ));
        }
        if self.idle_timeout < Duration::from_secs(1) {
            return Err(ConfigError::invalid(
                k("idle_timeout"),
                "must be at least 1s",
            ));
        }
        if self.partial_timeout < Duration::from_millis(100) {
            return Err(ConfigError::invalid(
                k("partial_timeout"),
                "must be at least 100ms",
            ));
        }
        if !(4096..=1 << 30).contains(&self.receive_buffer_bytes) {
            return Err(ConfigError::invalid(
                k("receive_buffer_bytes"),
                "must be between 4096 and 1 GiB",
            ));
        }
        if self.batch_max_bytes == 0 {
            return Err(ConfigError::invalid(
                k("batch_max_bytes"),
                "must be at least 1",
            ));
        }
        if self.batch_max_bytes + self.max_message_bytes + FRAME_OVERHEAD > max_frame_bytes {
            return Err(ConfigError::invalid(
                k("batch_max_bytes"),
                format!(
                    "batch_max_bytes + max_message_bytes + {FRAME_OVERHEAD} must fit in ingest.max_body_bytes ({max_frame_bytes}), the largest frame the pipeline reads"
                ),
            ));
        }
        if self.batch_wait.is_zero() || self.batch_wait > Duration::from_secs(60) {
            return Err(ConfigError::invalid(
                k("batch_wait"),
                "must be between 1ms and 60s",
            ));
        }
        Ok(())
    }
}
