//! Admin API tokens and roles.
//!
//! `[[admin.tokens]]` entries each give a token (inline, `token_env` or `token_file`) and a
//! role: `viewer` may read every `/api/` endpoint, `admin` may also change rules. Tokens
//! are read once at start and compared in constant time; a request names its token as
//! `Authorization: Bearer <token>`.
//!
//! Without any configured token the API is open, but only on a loopback listener (the
//! default `127.0.0.1:7401`): anyone who can reach it is on the machine. On any other
//! address an API without tokens refuses every `/api/` request with 403, so exposing the
//! port never exposes rule changes. `/healthz`, `/readyz` and `/metrics` never need a
//! token (probes and Prometheus scrape them).

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::http::{header, HeaderMap};
use logferry_shared::config::ConfigError;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::notify::config::SecretRef;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read every endpoint.
    Viewer,
    /// Read, and change rules.
    Admin,
}

/// `[[admin.tokens]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminTokenConfig {
    /// What the token may do.
    pub role: Role,
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

impl AdminTokenConfig {
    fn secret(&self) -> SecretRef {
        SecretRef {
            value: self.token.clone(),
            env: self.token_env.clone(),
            file: self.token_file.clone(),
        }
    }

    /// Checks the entry; `key` is its place in the config (`admin.tokens[0]`).
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        self.secret().check(&format!("{key}.token"), true)?;
        if self.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(ConfigError::invalid(
                format!("{key}.token"),
                "must not be empty",
            ));
        }
        Ok(())
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No token, or an unknown one: 401.
    Unauthenticated,
    /// A known token without the role: 403.
    Forbidden,
    /// No tokens configured on a non-loopback listener: 403.
    NotConfigured,
}

/// The tokens the admin endpoint accepts.
#[derive(Clone)]
pub struct AdminAuth {
    tokens: Vec<(Vec<u8>, Role)>,
    /// True when the API may be used without a token (none configured, loopback listener).
    open: bool,
}

impl std::fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAuth")
            .field("tokens", &self.tokens.len())
            .field("open", &self.open)
            .finish()
    }
}

impl AdminAuth {
    /// Reads every configured token.
    pub fn from_config(
        tokens: &[AdminTokenConfig],
        listen: SocketAddr,
    ) -> Result<AdminAuth, String> {
        let mut out = Vec::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            let value = t
                .secret()
                .read()
                .map_err(|e| format!("admin.tokens[{i}]: {e}"))?
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| format!("admin.tokens[{i}]: the token is empty"))?;
            out.push((value.into_bytes(), t.role));
        }
        Ok(AdminAuth::new(out, listen.ip().is_loopback()))
    }

    /// Tokens with their roles; `loopback` says whether the listener is local only.
    pub fn new(tokens: Vec<(Vec<u8>, Role)>, loopback: bool) -> AdminAuth {
        AdminAuth {
            open: tokens.is_empty() && loopback,
            tokens,
        }
    }

    /// True when the API needs no token.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Whether the request's token has at least `needed`.
    pub fn check(&self, headers: &HeaderMap, needed: Role) -> Result<(), Refusal> {
        if self.open {
            return Ok(());
        }
        if self.tokens.is_empty() {
            return Err(Refusal::NotConfigured);
        }
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            .unwrap_or_default();
        // Every token is compared, without stopping at a match.
        let mut best: Option<Role> = None;
        for (t, role) in &self.tokens {
            if bool::from(t.as_slice().ct_eq(presented)) && !presented.is_empty() {
                best = best.max(Some(*role));
            }
        }
        match best {
            None => Err(Refusal::Unauthenticated),
            Some(r) if r >= needed => Ok(()),
            Some(_) => Err(Refusal::Forbidden),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(t: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {t}").parse().unwrap(),
        );
        h
    }

    #[test]
    fn roles_tokens_and_the_open_loopback_case() {
        let auth = AdminAuth::new(
            vec![(b"v".to_vec(), Role::Viewer), (b"a".to_vec(), Role::Admin)],
            true,
        );
        assert!(!auth.is_open());
        assert_eq!(auth.check(&bearer("v"), Role::Viewer), Ok(()));
        assert_eq!(
            auth.check(&bearer("v"), Role::Admin),
            Err(Refusal::Forbidden)
        );
        assert_eq!(auth.check(&bearer("a"), Role::Admin), Ok(()));
        assert_eq!(
            auth.check(&bearer("x"), Role::Viewer),
            Err(Refusal::Unauthenticated)
        );
        assert_eq!(
            auth.check(&HeaderMap::new(), Role::Viewer),
            Err(Refusal::Unauthenticated)
        );
        assert_eq!(
            auth.check(&bearer(""), Role::Viewer),
            Err(Refusal::Unauthenticated)
        );
        let open = AdminAuth::new(Vec::new(), true);
        assert_eq!(open.check(&HeaderMap::new(), Role::Admin), Ok(()));
        let exposed = AdminAuth::new(Vec::new(), false);
        assert_eq!(
            exposed.check(&bearer("a"), Role::Viewer),
            Err(Refusal::NotConfigured)
        );
    }

    #[test]
    fn tokens_come_from_env_and_files_and_empty_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t");
        std::fs::write(&f, "from-file\n").unwrap();
        let listen: SocketAddr = "0.0.0.0:7401".parse().unwrap();
        let cfg = AdminTokenConfig {
            role: Role::Admin,
            token: None,
            token_env: None,
            token_file: Some(f.clone()),
        };
        let auth = AdminAuth::from_config(std::slice::from_ref(&cfg), listen).unwrap();
        assert_eq!(auth.check(&bearer("from-file"), Role::Admin), Ok(()));
        std::fs::write(&f, "\n").unwrap();
        let err = AdminAuth::from_config(&[cfg], listen).unwrap_err();
        assert!(err.contains("admin.tokens[0]"), "{err}");
        let both = AdminTokenConfig {
            role: Role::Viewer,
            token: Some("x".into()),
            token_env: Some("X".into()),
            token_file: None,
        };
        let err = both.validate("admin.tokens[1]").unwrap_err().to_string();
        assert!(err.contains("admin.tokens[1].token"), "{err}");
    }
}
