//! `[[inputs]] type = "otlp"`: the config a user writes, its defaults and its checks.

use std::net::SocketAddr;
use std::time::Duration;

use logferry_shared::config::ConfigError;
use serde::Deserialize;

use crate::input::web::config::{
    default_body_timeout, default_header_timeout, default_max_body_bytes, default_max_connections,
    default_max_decompressed_bytes, InputTlsConfig, InputTokenConfig, ServerConfig,
};

/// One OTLP/HTTP logs receiver.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpInputConfig {
    /// Names the input in metrics (`input` label), logs and `source.path`. Default
    /// `otlp`; names must be unique.
    #[serde(default)]
    pub name: Option<String>,
    /// Address to listen on. Default `127.0.0.1:4318`, OTLP/HTTP's port.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// TLS material; plain HTTP without it.
    #[serde(default)]
    pub tls: Option<InputTlsConfig>,
    /// Accepted bearer tokens; without any, requests need none.
    #[serde(default)]
    pub tokens: Vec<InputTokenConfig>,
    /// Most connections open at once; more are accepted and closed at once. Default 256.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Largest request body as sent, bytes (413 past it). Default 4 MiB.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Largest request body once decompressed, bytes (413 past it). Default 8 MiB.
    #[serde(default = "default_max_decompressed_bytes")]
    pub max_decompressed_bytes: usize,
    /// Time a client has to send a request's headers; also the longest a kept-alive
    /// connection may sit idle. Default 10s.
    #[serde(default = "default_header_timeout", with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Time a client has to send a request's body (408 past it). Default 30s.
    #[serde(default = "default_body_timeout", with = "humantime_serde")]
    pub body_timeout: Duration,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 4318))
}

impl OtlpInputConfig {
    /// The input's name.
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| "otlp".to_owned())
    }

    /// `otlp+http` or `otlp+https`: the scheme of the input's `source.path`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "otlp+https"
        } else {
            "otlp+http"
        }
    }

    /// A glob over `source.path` that matches every source of this input and no other's.
    pub fn source_glob(&self) -> String {
        format!(
            "{}://*/{}",
            self.scheme(),
            glob::Pattern::escape(&self.name())
        )
    }

    /// The listener's part of the config.
    pub fn server(&self) -> ServerConfig<'_> {
        ServerConfig {
            listen: self.listen,
            tls: self.tls.as_ref(),
            tokens: &self.tokens,
            max_connections: self.max_connections,
            max_body_bytes: self.max_body_bytes,
            max_decompressed_bytes: self.max_decompressed_bytes,
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
        }
    }

    /// Checks the values; `key` is this input's key path (`inputs[0]`).
    pub fn validate(&self, key: &str, max_frame_bytes: usize) -> Result<(), ConfigError> {
        if let Some(name) = &self.name {
            crate::input::check_name(&format!("{key}.name"), name)?;
        }
        self.server().validate(key, max_frame_bytes)
    }
}
