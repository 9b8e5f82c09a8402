//! `type = "cloudwatch_logs"`: the settings and what `validate` checks about them.

use std::time::Duration;

use serde::Deserialize;

use super::batcher::{OutOfRange, Oversize};
use crate::sink::queue::{QueueConfig, RetryConfig};
use crate::sink::template::Template;

/// Retention periods CloudWatch Logs accepts, in days (`PutRetentionPolicy`).
pub const RETENTION_DAYS: [u32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// Most streams sending at once that [`CloudWatchConfig::concurrency`] allows.
pub const MAX_CONCURRENCY: usize = 64;

/// `[sinks.NAME]` with `type = "cloudwatch_logs"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudWatchConfig {
    /// Log group name template, e.g. `/logferry/{k8s.namespace}`. Characters a group
    /// name may not have become `_`, names are cut to 512 bytes
    /// ([`batcher::group_name`]).
    pub group: Template,
    /// Log stream name template, e.g. `{host}/{source.path}`. `:` and `*` become `_`,
    /// names are cut to 512 bytes ([`batcher::stream_name`]).
    pub stream: Template,
    /// Create missing log groups (with `retention_days`) and streams, on first use and
    /// when the service says one does not exist (default true). Needs the permissions
    /// `logs:CreateLogGroup`, `logs:CreateLogStream` and `logs:PutRetentionPolicy`.
    #[serde(default = "yes")]
    pub create: bool,
    /// Retention set on the groups this sink creates, in days; one of [`RETENTION_DAYS`].
    /// None (default): never expire. It also narrows the age of events that are sent.
    #[serde(default)]
    pub retention_days: Option<u32>,
    /// AWS region; default: the standard chain (`AWS_REGION`, profile, instance metadata).
    #[serde(default)]
    pub region: Option<String>,
    /// Endpoint URL instead of the region's (VPC endpoints, local emulators).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Most log streams with a request in flight at once (default 4, 1 to 64). Requests to
    /// one stream are always sent one at a time, in order.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Longest time one request may take, connection included (default 30s).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Messages over 1,048,550 bytes: `truncate` (default) or `split`.
    #[serde(default)]
    pub oversize: Oversize,
    /// Events older than 14 days or the retention: `drop` (default; rejected, to the
    /// dead-letter store) or `clamp` (sent with the oldest accepted timestamp).
    #[serde(default)]
    pub too_old: OutOfRange,
    /// Events more than 2 hours ahead: `drop` (default) or `clamp` (sent with the current
    /// time).
    #[serde(default)]
    pub too_new: OutOfRange,
    /// The sink's durable queue.
    #[serde(default)]
    pub queue: QueueConfig,
    /// Backoff between failed deliveries.
    #[serde(default)]
    pub retry: RetryConfig,
}

fn yes() -> bool {
    true
}

fn default_concurrency() -> usize {
    4
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

impl CloudWatchConfig {
    /// Checks what serde cannot: the retention, the concurrency, the endpoint and region.
    pub fn validate(&self) -> anyhow::Result<()> {
        if let Some(days) = self.retention_days {
            if !RETENTION_DAYS.contains(&days) {
                anyhow::bail!(
                    "retention_days = {days} is not a retention CloudWatch Logs accepts: one of {RETENTION_DAYS:?}"
                );
            }
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            anyhow::bail!(
                "concurrency = {} must be between 1 and {MAX_CONCURRENCY}",
                self.concurrency
            );
        }
        if self.timeout.is_zero() {
            anyhow::bail!("timeout must be more than 0");
        }
        if let Some(endpoint) = &self.endpoint {
            let uri: http::Uri = endpoint
                .parse()
                .map_err(|e| anyhow::anyhow!("endpoint {endpoint:?} is not a URL: {e}"))?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                anyhow::bail!("endpoint {endpoint:?} must be an http:// or https:// URL");
            }
        }
        if let Some(region) = &self.region {
            if region.is_empty()
                || !region
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                anyhow::bail!("region {region:?} is not a region name");
            }
        }
        Ok(())
    }
}
