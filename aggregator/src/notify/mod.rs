//! Notifiers: delivering the [`Notification`]s that rules produce to people (Slack,
//! webhooks, email), away from the event path.
//!
//! Flow: the rules engine's bounded [`Outbox`](crate::rules::Outbox) → the
//! [`Dispatcher`] thread: [`Throttle`](throttle::Throttle) (de-duplication, per-rule limit
//! with digests) → [`DeliveryQueue`](queue::DeliveryQueue) (sled, flushed) → the named
//! [`Notifier`], retried with doubling backoff until delivered, refused for good, or
//! older than `give_up_after`.
//!
//! Guarantees: a notification in the delivery queue survives restarts and is delivered at
//! least once (a crash between delivery and removal sends it again). Notifications still
//! in the in-memory outbox when the process dies are lost; the outbox is drained every
//! [`service::POLL`].
//!
//! A notifier is one folder implementing [`Notifier`], registered in [`build`].

pub mod config;
pub mod email;
pub mod queue;
pub mod service;
pub mod slack;
#[cfg(test)]
mod tests;
pub mod throttle;
pub mod webhook;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use config::{AlertsConfig, NotifierConfig};
pub use service::Dispatcher;

use crate::rules::{Notification, NotificationKind};

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// Worth trying again later (timeouts, 429, 5xx); otherwise the notification is
    /// dropped and logged.
    pub retryable: bool,
    /// What happened (never holds a secret).
    pub message: String,
}

impl SendError {
    /// A failure that may pass later.
    pub fn retry(message: impl Into<String>) -> SendError {
        SendError {
            retryable: true,
            message: message.into(),
        }
    }

    /// A failure that will not pass by trying again.
    pub fn permanent(message: impl Into<String>) -> SendError {
        SendError {
            retryable: false,
            message: message.into(),
        }
    }
}

/// The future a notifier returns.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>>;

/// One way of telling people.
pub trait Notifier: Send + Sync {
    /// The notifier's name from the config.
    fn name(&self) -> &str;
    /// Delivers one notification.
    fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a>;
}

/// Builds the notifier `name` from its config. Secrets are read here (from env or files).
pub fn build(name: &str, cfg: &NotifierConfig) -> Result<Box<dyn Notifier>, String> {
    Ok(match cfg {
        NotifierConfig::Slack { .. } => Box::new(slack::Slack::new(name, cfg)?),
        NotifierConfig::Webhook { .. } => Box::new(webhook::Webhook::new(name, cfg)?),
        NotifierConfig::Email { .. } => Box::new(email::Email::new(name, cfg)?),
    })
}

/// An HTTP client for notifiers: rustls with the system's roots (or none when the system
/// has none: then only `http://` URLs work, and `https://` ones fail with an error).
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    let tls = match logferry_shared::tls::client_config(None, None) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "no system CA certificates: notifiers can only use http:// URLs");
            rustls::ClientConfig::builder_with_provider(logferry_shared::tls::provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        }
    };
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .map_err(|e| e.to_string())
}

/// POSTs `body` as JSON with `req` (URL and any headers set) and maps the answer to the
/// delivery outcome; `what` names the notifier kind in errors (never the URL).
pub(crate) async fn post_json(
    req: reqwest::RequestBuilder,
    body: Vec<u8>,
    what: &str,
) -> Result<(), SendError> {
    let resp = req
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| http_error(e, what))?;
    http_outcome(resp.status(), what)
}

/// Maps an HTTP answer to the delivery outcome: 2xx delivered; 408, 429 and 5xx retried;
/// other statuses refused for good.
pub(crate) fn http_outcome(status: reqwest::StatusCode, what: &str) -> Result<(), SendError> {
    if status.is_success() {
        Ok(())
    } else if status.is_server_error()
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
    {
        Err(SendError::retry(format!("{what} answered {status}")))
    } else {
        Err(SendError::permanent(format!("{what} answered {status}")))
    }
}

/// An HTTP error as a (retryable) send error, without the URL (it may hold a secret).
pub(crate) fn http_error(e: reqwest::Error, what: &str) -> SendError {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    SendError::retry(format!("{what}: {kind}"))
}

/// The text people read: the summary, then the sample event when there is one.
pub fn text(n: &Notification) -> String {
    let mut t = n.summary.clone();
    if let Some(s) = &n.sample {
        t.push('\n');
        if let Some(l) = s.level {
            t.push_str(l.as_str());
            t.push(' ');
        }
        if !s.host.is_empty() {
            t.push_str(&s.host);
            t.push(' ');
        }
        t.push_str(&s.source);
        t.push_str(": ");
        t.push_str(&s.message);
    }
    t
}

/// A short title: the summary's first line.
pub fn title(n: &Notification) -> &str {
    n.summary.lines().next().unwrap_or(match n.kind {
        NotificationKind::Firing => "alert firing",
        NotificationKind::Recovered => "alert recovered",
        _ => "notification",
    })
}
