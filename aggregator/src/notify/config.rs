//! `[alerts]` (delivery settings shared by every notifier) and `[notifiers.NAME]`.
//!
//! ```toml
//! [alerts]
//! queue_max = 10000            # notifications waiting for delivery, at most
//! per_rule_limit = 5           # per rule and notifier, in each per_rule_window;
//! per_rule_window = "10m"      # beyond it they are folded into one digest
//!
//! [notifiers.oncall]
//! type = "slack"
//! webhook_url_file = "/etc/logferry/slack-webhook"
//!
//! [notifiers.audit]
//! type = "webhook"
//! url = "https://hooks.example/logferry"
//! headers = { "X-Team" = "sre" }
//! secret_env = "LOGFERRY_WEBHOOK_SECRET"   # sent as `Authorization: Bearer <secret>`
//!
//! [notifiers.mail]
//! type = "email"
//! smtp_host = "smtp.example"
//! username = "logferry"
//! password_file = "/etc/logferry/smtp-password"
//! from = "logferry@example.com"
//! to = ["sre@example.com"]
//! ```
//!
//! Secrets are given inline (with `${VAR}` interpolation), by `*_env` (the name of an
//! environment variable read at start) or by `*_file` (a file, trailing newline ignored),
//! exactly one of them; they are never logged.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use logferry_shared::config::{require_file, ConfigError};
use serde::Deserialize;

/// `[alerts]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Most notifications waiting for delivery (the rest are counted and dropped).
    /// Default 10,000.
    #[serde(default = "default_queue_max")]
    pub queue_max: usize,
    /// Notifications sent per rule and notifier within `per_rule_window` before further
    /// ones are folded into one digest sent when the window ends. Default 5.
    #[serde(default = "default_per_rule_limit")]
    pub per_rule_limit: u32,
    /// Default 10 minutes.
    #[serde(default = "default_per_rule_window", with = "humantime_serde")]
    pub per_rule_window: Duration,
    /// A notification identical to one sent within this time (same rule, kind, group and
    /// text) is not sent again. Default 5 minutes.
    #[serde(default = "default_dedup_window", with = "humantime_serde")]
    pub dedup_window: Duration,
    /// First retry delay after a failed delivery; doubles up to `retry_max`. Default 1 s.
    #[serde(default = "default_retry_initial", with = "humantime_serde")]
    pub retry_initial: Duration,
    /// Longest retry delay. Default 5 minutes.
    #[serde(default = "default_retry_max", with = "humantime_serde")]
    pub retry_max: Duration,
    /// A notification still failing after this long is dropped and logged. Default 24 h.
    #[serde(default = "default_give_up_after", with = "humantime_serde")]
    pub give_up_after: Duration,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            queue_max: default_queue_max(),
            per_rule_limit: default_per_rule_limit(),
            per_rule_window: default_per_rule_window(),
            dedup_window: default_dedup_window(),
            retry_initial: default_retry_initial(),
            retry_max: default_retry_max(),
            give_up_after: default_give_up_after(),
        }
    }
}

fn default_queue_max() -> usize {
    10_000
}
fn default_per_rule_limit() -> u32 {
    5
}
fn default_per_rule_window() -> Duration {
    Duration::from_secs(600)
}
fn default_dedup_window() -> Duration {
    Duration::from_secs(300)
}
fn default_retry_initial() -> Duration {
    Duration::from_secs(1)
}
fn default_retry_max() -> Duration {
    Duration::from_secs(300)
}
fn default_give_up_after() -> Duration {
    Duration::from_secs(86_400)
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_smtp_port() -> u16 {
    587
}
fn default_subject_prefix() -> String {
    "[logferry]".to_owned()
}

/// A secret given inline, by environment variable name, or by file: exactly one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretRef {
    /// Inline value.
    pub value: Option<String>,
    /// Environment variable holding it.
    pub env: Option<String>,
    /// File holding it.
    pub file: Option<PathBuf>,
}

impl SecretRef {
    /// Checks that exactly one source is given (or none, unless `required`) and that it
    /// exists; errors name `key`, `key_env` or `key_file`.
    pub fn check(&self, key: &str, required: bool) -> Result<(), ConfigError> {
        let n = [
            self.value.is_some(),
            self.env.is_some(),
            self.file.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if n > 1 {
            return Err(ConfigError::invalid(
                key,
                format!("set only one of {key}, {key}_env and {key}_file"),
            ));
        }
        if n == 0 && required {
            return Err(ConfigError::invalid(
                key,
                format!("set one of {key}, {key}_env and {key}_file"),
            ));
        }
        if let Some(f) = &self.file {
            require_file(&format!("{key}_file"), f)?;
        }
        if let Some(v) = &self.env {
            if std::env::var_os(v).is_none() {
                return Err(ConfigError::invalid(
                    format!("{key}_env"),
                    format!("environment variable {v} is not set"),
                ));
            }
        }
        Ok(())
    }

    /// Reads the secret (`None` when none is configured).
    pub fn read(&self) -> Result<Option<String>, String> {
        if let Some(v) = &self.value {
            return Ok(Some(v.clone()));
        }
        if let Some(name) = &self.env {
            return std::env::var(name)
                .map(Some)
                .map_err(|_| format!("environment variable {name} is not set"));
        }
        if let Some(f) = &self.file {
            return logferry_shared::config::read_secret_file(f)
                .map(Some)
                .map_err(|e| format!("{}: {e}", f.display()));
        }
        Ok(None)
    }
}

/// `[notifiers.NAME]`, selected by `type`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum NotifierConfig {
    /// A Slack incoming webhook.
    Slack {
        /// The webhook URL (it is a secret).
        #[serde(default)]
        webhook_url: Option<String>,
        /// Environment variable holding the URL.
        #[serde(default)]
        webhook_url_env: Option<String>,
        /// File holding the URL.
        #[serde(default)]
        webhook_url_file: Option<PathBuf>,
        /// Request timeout. Default 10 s.
        #[serde(default = "default_timeout", with = "humantime_serde")]
        timeout: Duration,
    },
    /// A JSON POST of the notification to any URL.
    Webhook {
        /// Where to POST.
        url: String,
        /// Extra request headers.
        #[serde(default)]
        headers: BTreeMap<String, String>,
        /// Sent as `Authorization: Bearer <secret>` when set.
        #[serde(default)]
        secret: Option<String>,
        /// Environment variable holding the secret.
        #[serde(default)]
        secret_env: Option<String>,
        /// File holding the secret.
        #[serde(default)]
        secret_file: Option<PathBuf>,
        /// Request timeout. Default 10 s.
        #[serde(default = "default_timeout", with = "humantime_serde")]
        timeout: Duration,
    },
    /// Email over SMTP.
    Email {
        /// SMTP server.
        smtp_host: String,
        /// Port; default 587 (submission with STARTTLS).
        #[serde(default = "default_smtp_port")]
        smtp_port: u16,
        /// `starttls` (default: upgrade, refuse if the server cannot), `tls` (implicit
        /// TLS, port 465), or `none` (plain text; only for a relay on localhost).
        #[serde(default)]
        security: SmtpSecurity,
        /// Trust this CA (PEM) for the server's certificate, besides the system's.
        #[serde(default)]
        ca: Option<PathBuf>,
        /// Login name, when the server wants one.
        #[serde(default)]
        username: Option<String>,
        /// Password.
        #[serde(default)]
        password: Option<String>,
        /// Environment variable holding the password.
        #[serde(default)]
        password_env: Option<String>,
        /// File holding the password.
        #[serde(default)]
        password_file: Option<PathBuf>,
        /// Sender address.
        from: String,
        /// Recipients.
        to: Vec<String>,
        /// Put before every subject. Default `[logferry]`.
        #[serde(default = "default_subject_prefix")]
        subject_prefix: String,
        /// Connection timeout. Default 10 s.
        #[serde(default = "default_timeout", with = "humantime_serde")]
        timeout: Duration,
    },
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (required).
    #[default]
    Starttls,
    /// TLS from the start.
    Tls,
    /// No TLS.
    None,
}

fn check_url(key: &str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            key,
            "must be an http:// or https:// URL",
        ))
    }
}

fn check_address(key: &str, a: &str) -> Result<(), ConfigError> {
    match a.rsplit_once('@') {
        Some((l, d)) if !l.is_empty() && !d.is_empty() && !a.contains(char::is_whitespace) => {
            Ok(())
        }
        _ => Err(ConfigError::invalid(
            key,
            format!("`{a}` is not an email address"),
        )),
    }
}

impl NotifierConfig {
    /// Checks what serde cannot; `key` is `notifiers.NAME`.
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        match self {
            NotifierConfig::Slack {
                webhook_url,
                webhook_url_env,
                webhook_url_file,
                ..
            } => {
                let s = SecretRef {
                    value: webhook_url.clone(),
                    env: webhook_url_env.clone(),
                    file: webhook_url_file.clone(),
                };
                s.check(&format!("{key}.webhook_url"), true)?;
                if let Some(u) = webhook_url {
                    check_url(&format!("{key}.webhook_url"), u)?;
                }
            }
            NotifierConfig::Webhook {
                url,
                headers,
                secret,
                secret_env,
                secret_file,
                ..
            } => {
                check_url(&format!("{key}.url"), url)?;
                for (h, v) in headers {
                    if http::HeaderName::from_bytes(h.as_bytes()).is_err()
                        || http::HeaderValue::from_str(v).is_err()
                    {
                        return Err(ConfigError::invalid(
                            format!("{key}.headers.{h}"),
                            "not a valid HTTP header",
                        ));
                    }
                }
                SecretRef {
                    value: secret.clone(),
                    env: secret_env.clone(),
                    file: secret_file.clone(),
                }
                .check(&format!("{key}.secret"), false)?;
            }
            NotifierConfig::Email {
                smtp_host,
                ca,
                password,
                password_env,
                password_file,
                username,
                from,
                to,
                ..
            } => {
                if smtp_host.trim().is_empty() {
                    return Err(ConfigError::invalid(
                        format!("{key}.smtp_host"),
                        "must not be empty",
                    ));
                }
                if let Some(ca) = ca {
                    require_file(&format!("{key}.ca"), ca)?;
                }
                check_address(&format!("{key}.from"), from)?;
                if to.is_empty() {
                    return Err(ConfigError::invalid(
                        format!("{key}.to"),
                        "name at least one recipient",
                    ));
                }
                for (i, a) in to.iter().enumerate() {
                    check_address(&format!("{key}.to[{i}]"), a)?;
                }
                let pw = SecretRef {
                    value: password.clone(),
                    env: password_env.clone(),
                    file: password_file.clone(),
                };
                pw.check(&format!("{key}.password"), username.is_some())?;
            }
        }
        Ok(())
    }
}

/// Checks `[alerts]`.
pub fn validate_alerts(a: &AlertsConfig) -> Result<(), ConfigError> {
    if a.queue_max == 0 {
        return Err(ConfigError::invalid(
            "alerts.queue_max",
            "must be at least 1",
        ));
    }
    if a.per_rule_limit == 0 {
        return Err(ConfigError::invalid(
            "alerts.per_rule_limit",
            "must be at least 1",
        ));
    }
    if a.per_rule_window.is_zero() {
        return Err(ConfigError::invalid(
            "alerts.per_rule_window",
            "must be above 0",
        ));
    }
    if a.retry_initial.is_zero() || a.retry_max < a.retry_initial {
        return Err(ConfigError::invalid(
            "alerts.retry_max",
            "retry_initial must be above 0 and retry_max at least retry_initial",
        ));
    }
    Ok(())
}
