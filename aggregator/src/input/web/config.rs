//! The config keys every HTTP input (`http`, `otlp`) has: TLS, tokens, connection and
//! request limits, timeouts; their defaults and checks. Each input's config struct lists
//! them itself (serde's `flatten` would lose `deny_unknown_fields`) and hands them here
//! as a [`ServerConfig`] to check and to build the listener from.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use logferry_shared::config::{require_file, ConfigError};
use serde::Deserialize;

use crate::notify::config::SecretRef;

/// `[inputs.tls]` of an HTTP input: without it the input speaks plain HTTP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputTlsConfig {
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by this CA.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

/// One `[[inputs.tokens]]` entry: a bearer token clients send as
/// `Authorization: Bearer <token>`, given inline, by environment variable or by file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputTokenConfig {
    /// The token, inline (with `${VAR}` interpolation).
    #[serde(default)]
    pub token: Option<String>,
    /// Or: an environment variable holding it.
    #[serde(default)]
    pub token_env: Option<String>,
    /// Or: a file holding it (trailing newline ignored).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

impl InputTokenConfig {
    /// Where the token comes from.
    pub fn secret(&self) -> SecretRef {
        SecretRef {
            value: self.token.clone(),
            env: self.token_env.clone(),
            file: self.token_file.clone(),
        }
    }
}

/// What an HTTP input's listener is built from, borrowed from its config.
#[derive(Debug, Clone, Copy)]
pub struct ServerConfig<'a> {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// TLS, if any.
    pub tls: Option<&'a InputTlsConfig>,
    /// Accepted tokens; none means no token is asked for.
    pub tokens: &'a [InputTokenConfig],
    /// Most connections open at once.
    pub max_connections: usize,
    /// Largest request body as sent (compressed), bytes.
    pub max_body_bytes: usize,
    /// Largest request body once decompressed, bytes.
    pub max_decompressed_bytes: usize,
    /// Time a client has to send a request's headers (and most time a kept-alive
    /// connection may sit idle).
    pub header_timeout: Duration,
    /// Time a client has to send a request's body.
    pub body_timeout: Duration,
}

/// Default `max_connections`.
pub fn default_max_connections() -> usize {
    256
}
/// Default `max_body_bytes`: 4 MiB.
pub fn default_max_body_bytes() -> usize {
    4 << 20
}
/// Default `max_decompressed_bytes`: 8 MiB.
pub fn default_max_decompressed_bytes() -> usize {
    8 << 20
}
/// Default `header_timeout`.
pub fn default_header_timeout() -> Duration {
    Duration::from_secs(10)
}
/// Default `body_timeout`.
pub fn default_body_timeout() -> Duration {
    Duration::from_secs(30)
}

/// Headroom a stored batch needs over the records it holds (record and source overhead,
/// frame header, compression overhead on incompressible data).
pub const FRAME_OVERHEAD: usize = 64 << 10;

impl ServerConfig<'_> {
    /// Checks the values; `key` is the input's key path (`inputs[0]`). `max_frame_bytes`
    /// is the largest frame the pipeline reads: one request's records are stored as one
    /// batch, so a request's decompressed body must fit in it.
    pub fn validate(&self, key: &str, max_frame_bytes: usize) -> Result<(), ConfigError> {
        let k = |field: &str| format!("{key}.{field}");
        if let Some(tls) = self.tls {
            require_file(&k("tls.cert"), &tls.cert)?;
            require_file(&k("tls.key"), &tls.key)?;
            if let Some(ca) = &tls.client_ca {
                require_file(&k("tls.client_ca"), ca)?;
            }
        }
        for (i, t) in self.tokens.iter().enumerate() {
            let tk = k(&format!("tokens[{i}].token"));
            t.secret().check(&tk, true)?;
            if t.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
                return Err(ConfigError::invalid(tk, "must not be empty"));
            }
        }
        if self.max_connections == 0 {
            return Err(ConfigError::invalid(
                k("max_connections"),
                "must be at least 1",
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::invalid(
                k("max_body_bytes"),
                "must be at least 1024",
            ));
        }
        if self.max_decompressed_bytes < self.max_body_bytes {
            return Err(ConfigError::invalid(
                k("max_decompressed_bytes"),
                "must be at least max_body_bytes",
            ));
        }
        if self.max_decompressed_bytes + FRAME_OVERHEAD > max_frame_bytes {
            return Err(ConfigError::invalid(
                k("max_decompressed_bytes"),
                format!(
                    "max_decompressed_bytes + {FRAME_OVERHEAD} must fit in ingest.max_body_bytes ({max_frame_bytes}): one request is stored as one batch"
                ),
            ));
        }
        for (field, d) in [
            ("header_timeout", self.header_timeout),
            ("body_timeout", self.body_timeout),
        ] {
            if d < Duration::from_millis(100) || d > Duration::from_secs(3600) {
                return Err(ConfigError::invalid(
                    k(field),
                    "must be between 100ms and 1h",
                ));
            }
        }
        Ok(())
    }
}
