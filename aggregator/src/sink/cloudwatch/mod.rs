//! The AWS CloudWatch Logs sink (`type = "cloudwatch_logs"`): sends each event, its whole
//! JSON line as the message, with `PutLogEvents` to a log group and log stream named by
//! templates ([`super::template`]).
//!
//! It implements [`Deliver`]: the delivery task (see [`super::remote`]) queues events,
//! retries failed deliveries with backoff and dead-letters rejected events; this module
//! only turns a batch into requests and says what became of each event.
//!
//! # Requests
//!
//! [`batcher`] does the pure part: groups events by (log group, log stream), sorts each
//! stream's events by timestamp (stably), cuts them into requests within the service's
//! limits (bytes, event count, 24-hour span), applies the time window and the over-size
//! policy. The timestamp is the event's `timestamp`, else its `observed_timestamp`, else
//! the current time.
//!
//! Requests to one stream are sent one after another, in timestamp order, and a stream
//! stops at its first failed request (its later events stay waiting); up to
//! [`CloudWatchConfig::concurrency`] streams send at the same time. So CloudWatch receives
//! each stream's events in order, and the pieces of a split event in order.
//!
//! # Outcomes and errors
//!
//! - Request accepted: its events are delivered, except those the response's
//!   `rejectedLogEventsInfo` names (too old, expired by the group's retention, too new),
//!   which are rejected and counted as `too_old` or `too_new`.
//! - `ThrottlingException` (or HTTP 429, `LimitExceededException`): [`FailureKind::Throttled`].
//! - `ServiceUnavailableException`, HTTP 5xx, timeouts, connection and dispatch failures,
//!   unreadable responses: [`FailureKind::Unavailable`].
//! - `ResourceNotFoundException`: with `create = true`, the group (with its retention)
//!   and stream are created and the request is sent again once, at once; with `create =
//!   false` it is [`FailureKind::Refused`] (an operator has to create them).
//!
//! With `create = true`, a new stream is created before its first request, and its group
//! too unless already seen. Creating a group without the permission is not an error by
//! itself (groups are often managed elsewhere): only if the stream then finds no group.
//! Failing to set the retention of a new group is logged as an error and the events are
//! sent anyway.
//! - Credentials and permissions (`AccessDeniedException`, `UnrecognizedClientException`,
//!   invalid or expired tokens, signatures), any other 4xx such as
//!   `InvalidParameterException`, and a missing region or credentials:
//!   [`FailureKind::Refused`]: retried with the longest backoff, never dropped.
//!
//! When several streams fail in one call, the error returned is the most serious one
//! (refused, then unavailable, then throttled), with the number of failed streams.
//!
//! The SDK's own retries are disabled (one attempt per request) so that retries, backoff
//! and their metrics all belong to the delivery task; each attempt is bounded by
//! [`CloudWatchConfig::timeout`].
//!
//! A split event whose first pieces were accepted before a later request failed is
//! remembered (by a hash of its line, for up to 1,024 such events) so the retry sends only
//! the remaining pieces: no piece is sent twice within a run.
//!
//! # Client
//!
//! The AWS client is created on the first delivery (loading the AWS configuration is
//! asynchronous). Credentials come from the standard chain of `aws-config`: environment,
//! shared config and credentials files (profiles, SSO), web identity (IRSA on EKS), ECS
//! and EC2 instance metadata. HTTPS uses rustls with the ring crypto provider, like the
//! rest of the process (the SDK's default client would bring aws-lc-rs).

pub mod batcher;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_cloudwatchlogs::config::{Credentials, Region};
use aws_sdk_cloudwatchlogs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use aws_sdk_cloudwatchlogs::Client;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::Value;

use self::batcher::{EventIn, OutOfRange, Oversize, Piece, Plan, Policy, StreamPlan, TimeWindow};
use super::queue::{QueueConfig, RetryConfig};
use super::remote::{Adjustments, BoxFuture, Deliver, DeliverError, FailureKind, Outcome, Pending};
use super::template::{event_millis, Template};

/// Retention periods CloudWatch Logs accepts, in days (`PutRetentionPolicy`).
pub const RETENTION_DAYS: [u32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// Most partly delivered split events remembered (see [`CloudWatchSink`]).
const MAX_PARTIAL: usize = 1024;

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

/// The CloudWatch Logs sink. See the module docs.
pub struct CloudWatchSink {
    name: String,
    config: CloudWatchConfig,
    policy: Policy,
    adjust: Adjustments,
    credentials: Option<Credentials>,
    client: Option<Client>,
    /// Groups and streams known to exist (created or used successfully in this run).
    known: Mutex<Known>,
    /// Split events partly delivered: (hash, length) of the line -> pieces delivered.
    partial: HashMap<(u128, usize), usize>,
}

#[derive(Debug, Default)]
struct Known {
    groups: HashSet<String>,
    streams: HashSet<(String, String)>,
}

impl std::fmt::Debug for CloudWatchSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudWatchSink")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl CloudWatchSink {
    /// A sink named `name` (for metrics and logs), counting adjusted events in `adjust`.
    /// Checks the config; connects on the first delivery.
    pub fn new(
        name: &str,
        config: &CloudWatchConfig,
        adjust: Adjustments,
    ) -> anyhow::Result<CloudWatchSink> {
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("sink {name:?}: {e}"))?;
        Ok(CloudWatchSink {
            name: name.to_owned(),
            policy: Policy {
                oversize: config.oversize,
                too_old: config.too_old,
                too_new: config.too_new,
                window: TimeWindow::new(config.retention_days),
            },
            config: config.clone(),
            adjust,
            credentials: None,
            client: None,
            known: Mutex::new(Known::default()),
            partial: HashMap::new(),
        })
    }

    /// Uses these static credentials instead of the standard chain (local emulators and
    /// tests; production uses the chain). Call before the first delivery.
    pub fn with_static_credentials(mut self, access_key_id: &str, secret_access_key: &str) -> Self {
        self.credentials = Some(Credentials::new(
            access_key_id,
            secret_access_key,
            None,
            None,
            "logferry-static",
        ));
        self.client = None;
        self
    }

    async fn client(&mut self) -> Client {
        if let Some(client) = &self.client {
            return client.clone();
        }
        use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(self.config.timeout.min(Duration::from_secs(10)))
            .operation_attempt_timeout(self.config.timeout)
            .operation_timeout(self.config.timeout)
            .build();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .timeout_config(timeouts);
        if let Some(region) = &self.config.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(credentials) = &self.credentials {
            loader = loader.credentials_provider(credentials.clone());
        }
        let shared = loader.load().await;
        let mut builder = aws_sdk_cloudwatchlogs::config::Builder::from(&shared);
        if let Some(endpoint) = &self.config.endpoint {
            builder = builder.endpoint_url(endpoint.clone());
        }
        let client = Client::from_conf(builder.build());
        self.client = Some(client.clone());
        client
    }

    /// The batcher's input for the waiting events of `batch`.
    fn prepare(&self, batch: &[Pending], now_ms: i64) -> Vec<EventIn> {
        batch
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_waiting())
            .map(|(index, p)| {
                let message = String::from_utf8_lossy(&p.line).into_owned();
                let event: Value = serde_json::from_str(&message).unwrap_or(Value::Null);
                let timestamp = event_millis(&event)
                    .or_else(|| observed_millis(&event))
                    .unwrap_or(now_ms);
                EventIn {
                    index,
                    group: batcher::group_name(&self.config.group.render(&event)),
                    stream: batcher::stream_name(&self.config.stream.render(&event)),
                    timestamp,
                    skip_pieces: self.partial.get(&line_key(&p.line)).copied().unwrap_or(0),
                    message,
                }
            })
            .collect()
    }

    async fn deliver_batch(&mut self, batch: &mut [Pending]) -> Result<(), DeliverError> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let events = self.prepare(batch, now_ms);
        if events.is_empty() {
            return Ok(());
        }
        let plan = batcher::plan(events, now_ms, &self.policy);
        let Plan {
            streams,
            rejected,
            pieces,
            adjusted,
            counts,
        } = plan;
        for (index, reason) in rejected {
            if let Some(p) = batch.get_mut(index) {
                p.outcome = Outcome::Rejected(reason);
            }
        }
        self.adjust.count("too_old", counts.too_old);
        self.adjust.count("too_new", counts.too_new);

        let client = self.client().await;
        let this = &*self;
        let results: Vec<StreamResult> = futures_util::stream::iter(streams)
            .map(|s| this.send_stream(&client, s))
            .buffer_unordered(this.config.concurrency)
            .collect()
            .await;

        // What became of each event's pieces.
        let mut accepted: HashMap<usize, usize> = HashMap::new();
        let mut refused: HashMap<usize, (&'static str, String)> = HashMap::new();
        let mut failures: Vec<DeliverError> = Vec::new();
        for result in results {
            for (index, verdict) in result.pieces {
                match verdict {
                    PieceVerdict::Accepted => *accepted.entry(index).or_default() += 1,
                    PieceVerdict::Rejected(reason, message) => {
                        refused.entry(index).or_insert((reason, message));
                    }
                }
            }
            failures.extend(result.error);
        }
        for (index, total) in pieces {
            let Some(p) = batch.get_mut(index) else {
                continue;
            };
            let key = line_key(&p.line);
            if let Some((reason, message)) = refused.remove(&index) {
                self.adjust.count(reason, 1);
                p.outcome = Outcome::Rejected(message);
                self.partial.remove(&key);
                continue;
            }
            let done = accepted.get(&index).copied().unwrap_or(0);
            if done >= total {
                p.outcome = Outcome::Delivered;
                self.partial.remove(&key);
                for reason in adjusted.get(&index).into_iter().flatten() {
                    self.adjust.count(reason, 1);
                }
            } else if done > 0 {
                if self.partial.len() >= MAX_PARTIAL {
                    // Events the queue dropped before they were finished; forgetting
                    // them only risks sending a piece again.
                    self.partial.clear();
                }
                *self.partial.entry(key).or_default() += done;
            }
        }
        match worst(failures) {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// Sends one stream's requests in order, stopping at the first failure.
    async fn send_stream(&self, client: &Client, plan: StreamPlan) -> StreamResult {
        let mut out = StreamResult::default();
        let StreamPlan {
            group,
            stream,
            requests,
        } = plan;
        if self.config.create && !self.is_known(&group, &stream) {
            if let Err(e) = self.create(client, &group, &stream).await {
                out.error = Some(e);
                return out;
            }
        }
        for request in requests {
            match self.put(client, &group, &stream, &request).await {
                Ok(rejected) => {
                    for (i, piece) in request.iter().enumerate() {
                        let verdict = match rejected.verdict(i) {
                            None => PieceVerdict::Accepted,
                            Some(reason) => PieceVerdict::Rejected(
                                reason,
                                format!(
                                    "CloudWatch Logs rejected the event ({}): timestamp {}",
                                    reason.replace('_', " "),
                                    piece.timestamp
                                ),
                            ),
                        };
                        out.pieces.push((piece.index, verdict));
                    }
                }
                Err(e) => {
                    out.error = Some(DeliverError {
                        message: format!("{group} / {stream}: {}", e.message),
                        ..e
                    });
                    break;
                }
            }
        }
        out
    }

    fn is_known(&self, group: &str, stream: &str) -> bool {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known
            .streams
            .contains(&(group.to_owned(), stream.to_owned()))
    }

    fn forget(&self, group: &str, stream: &str) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.groups.remove(group);
        known.streams.remove(&(group.to_owned(), stream.to_owned()));
    }

    /// Creates the group (setting its retention) unless known, then the stream; either
    /// existing already is fine. When the stream cannot be created because the group is
    /// gone (deleted since it was seen), the group is created again, once.
    ///
    /// A group that may not be created (no `logs:CreateLogGroup` permission, common when
    /// groups are managed elsewhere) is only an error if the stream then finds no group.
    async fn create(&self, client: &Client, group: &str, stream: &str) -> Result<(), DeliverError> {
        let mut group_recreated = false;
        let mut group_refused: Option<DeliverError> = None;
        loop {
            let group_known = {
                let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
                known.groups.contains(group)
            };
            if !group_known {
                match self.create_group(client, group).await {
                    Ok(()) => {}
                    Err(e) if e.kind == FailureKind::Refused => group_refused = Some(e),
                    Err(e) => return Err(e),
                }
            }
            let created = client
                .create_log_stream()
                .log_group_name(group)
                .log_stream_name(stream)
                .send()
                .await;
            match created {
                Ok(_) => {}
                Err(e) if already_exists(&e) => {}
                Err(e) => match classify(&e, "CreateLogStream") {
                    Failure::NotFound(message) => match group_refused.take() {
                        Some(refused) => {
                            return Err(DeliverError {
                                message: format!("{}; {message}", refused.message),
                                ..refused
                            })
                        }
                        None if !group_recreated => {
                            group_recreated = true;
                            self.forget(group, stream);
                            continue;
                        }
                        None => return Err(Failure::NotFound(message).into_error(true)),
                    },
                    failure => return Err(failure.into_error(self.config.create)),
                },
            }
            let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            known.streams.insert((group.to_owned(), stream.to_owned()));
            return Ok(());
        }
    }

    /// Creates a log group and sets its retention; an existing group is left as it is.
    async fn create_group(&self, client: &Client, group: &str) -> Result<(), DeliverError> {
        match client.create_log_group().log_group_name(group).send().await {
            Ok(_) => {
                tracing::info!(sink = %self.name, group, "created CloudWatch log group");
                if let Some(days) = self.config.retention_days {
                    let set = client
                        .put_retention_policy()
                        .log_group_name(group)
                        .retention_in_days(i32::try_from(days).unwrap_or(i32::MAX))
                        .send()
                        .await;
                    if let Err(e) = set {
                        // The group exists and takes events: do not hold them back for
                        // its retention, but say so loudly.
                        let e = classify(&e, "PutRetentionPolicy").into_error(true);
                        tracing::error!(sink = %self.name, group, error = %e, "could not set the retention of a new log group");
                    }
                }
            }
            Err(e) if already_exists(&e) => {}
            Err(e) => return Err(classify(&e, "CreateLogGroup").into_error(self.config.create)),
        }
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.groups.insert(group.to_owned());
        Ok(())
    }

    /// One `PutLogEvents`; on `ResourceNotFoundException` creates the group and stream (if
    /// `create`) and sends it again once.
    async fn put(
        &self,
        client: &Client,
        group: &str,
        stream: &str,
        request: &[Piece],
    ) -> Result<Rejections, DeliverError> {
        let mut created = false;
        loop {
            let mut events = Vec::with_capacity(request.len());
            for piece in request {
                let event = InputLogEvent::builder()
                    .timestamp(piece.timestamp)
                    .message(piece.message.clone())
                    .build()
                    .map_err(|e| {
                        DeliverError::new(
                            FailureKind::Refused,
                            format!("building the request: {e}"),
                        )
                    })?;
                events.push(event);
            }
            let sent = client
                .put_log_events()
                .log_group_name(group)
                .log_stream_name(stream)
                .set_log_events(Some(events))
                .send()
                .await;
            match sent {
                Ok(output) => {
                    let info = output.rejected_log_events_info();
                    return Ok(Rejections {
                        too_old_end: info.and_then(|i| i.too_old_log_event_end_index()),
                        expired_end: info.and_then(|i| i.expired_log_event_end_index()),
                        too_new_start: info.and_then(|i| i.too_new_log_event_start_index()),
                    });
                }
                Err(e) => match classify(&e, "PutLogEvents") {
                    Failure::NotFound(_) if self.config.create && !created => {
                        created = true;
                        self.forget(group, stream);
                        self.create(client, group, stream).await?;
                    }
                    failure => return Err(failure.into_error(self.config.create)),
                },
            }
        }
    }
}

impl Deliver for CloudWatchSink {
    fn deliver<'a>(
        &'a mut self,
        batch: &'a mut [Pending],
    ) -> BoxFuture<'a, Result<(), DeliverError>> {
        Box::pin(self.deliver_batch(batch))
    }
}

/// Indices (in one request) of the events the service refused.
#[derive(Debug, Clone, Copy, Default)]
struct Rejections {
    /// Events before this index are too old (exclusive).
    too_old_end: Option<i32>,
    /// Events before this index are older than the group's retention (exclusive).
    expired_end: Option<i32>,
    /// Events from this index on are too new (inclusive).
    too_new_start: Option<i32>,
}

impl Rejections {
    /// The reason event `i` of the request was refused, if it was.
    fn verdict(&self, i: usize) -> Option<&'static str> {
        let i = i64::try_from(i).unwrap_or(i64::MAX);
        let before = |end: Option<i32>| end.is_some_and(|e| i < i64::from(e));
        if before(self.too_old_end) || before(self.expired_end) {
            Some("too_old")
        } else if self.too_new_start.is_some_and(|s| i >= i64::from(s)) {
            Some("too_new")
        } else {
            None
        }
    }
}

#[derive(Debug)]
enum PieceVerdict {
    Accepted,
    Rejected(&'static str, String),
}

#[derive(Debug, Default)]
struct StreamResult {
    pieces: Vec<(usize, PieceVerdict)>,
    error: Option<DeliverError>,
}

/// A classified SDK error.
#[derive(Debug)]
enum Failure {
    /// `ResourceNotFoundException`.
    NotFound(String),
    /// Anything else.
    Other(DeliverError),
}

impl Failure {
    fn into_error(self, create: bool) -> DeliverError {
        match self {
            Failure::Other(e) => e,
            Failure::NotFound(message) if create => {
                // Still missing right after it was created.
                DeliverError::new(FailureKind::Unavailable, message)
            }
            Failure::NotFound(message) => DeliverError::new(
                FailureKind::Refused,
                format!("{message} (create = false: the log group and stream must exist)"),
            ),
        }
    }
}

/// Maps an SDK error of `operation` to what the delivery task should do (module docs).
fn classify<E>(err: &SdkError<E>, operation: &str) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let text = format!("{operation}: {}", DisplayErrorContext(err));
    let kind = match err {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            match ctx.err().code().unwrap_or_default() {
                "ResourceNotFoundException" => return Failure::NotFound(text),
                "ThrottlingException"
                | "Throttling"
                | "TooManyRequestsException"
                | "RequestLimitExceeded"
                | "LimitExceededException" => FailureKind::Throttled,
                "ServiceUnavailableException" | "InternalFailure" | "InternalServerError" => {
                    FailureKind::Unavailable
                }
                _ if status == 429 => FailureKind::Throttled,
                _ if status >= 500 => FailureKind::Unavailable,
                _ => FailureKind::Refused,
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            FailureKind::Unavailable
        }
        // Missing region or credentials, or a request that cannot be built.
        SdkError::ConstructionFailure(_) => FailureKind::Refused,
        _ => FailureKind::Unavailable,
    };
    Failure::Other(DeliverError::new(kind, text))
}

fn already_exists<E>(err: &SdkError<E>) -> bool
where
    E: ProvideErrorMetadata,
{
    matches!(err, SdkError::ServiceError(ctx) if ctx.err().code() == Some("ResourceAlreadyExistsException"))
}

/// The most serious of `failures` (refused, unavailable, throttled), saying how many
/// streams failed.
fn worst(failures: Vec<DeliverError>) -> Option<DeliverError> {
    let n = failures.len();
    let rank = |k: FailureKind| match k {
        FailureKind::Refused => 0,
        FailureKind::Unavailable => 1,
        FailureKind::Throttled => 2,
    };
    let mut worst = failures.into_iter().min_by_key(|e| rank(e.kind))?;
    if n > 1 {
        worst.message = format!("{} (and {} more failed streams)", worst.message, n - 1);
    }
    Some(worst)
}

/// The event's `observed_timestamp` in ms since the epoch.
fn observed_millis(event: &Value) -> Option<i64> {
    let text = event.get("observed_timestamp")?.as_str()?;
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Identifies a line for [`CloudWatchSink::partial`].
fn line_key(line: &[u8]) -> (u128, usize) {
    (xxhash_rust::xxh3::xxh3_128(line), line.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> anyhow::Result<CloudWatchConfig> {
        let text =
            format!("group = \"/logferry/{{k8s.namespace}}\"\nstream = \"{{host}}\"\n{extra}");
        Ok(toml::from_str(&text)?)
    }

    #[test]
    fn config_defaults_and_validation() {
        let c = config("").unwrap();
        assert!(c.create);
        assert_eq!(c.concurrency, 4);
        assert_eq!(c.oversize, Oversize::Truncate);
        assert_eq!(c.too_old, OutOfRange::Drop);
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert!(CloudWatchSink::new("cw", &c, Adjustments::default()).is_ok());

        let c = config("retention_days = 30\noversize = \"split\"\ntoo_old = \"clamp\"\ntoo_new = \"clamp\"\nendpoint = \"http://127.0.0.1:4566\"\nregion = \"eu-west-1\"\n[queue]\nmax_bytes = 1000\n")
            .unwrap();
        assert_eq!(c.retention_days, Some(30));
        assert_eq!(c.oversize, Oversize::Split);
        assert_eq!(c.queue.max_bytes, 1000);
        assert!(CloudWatchSink::new("cw", &c, Adjustments::default()).is_ok());

        for bad in [
            "retention_days = 31",
            "concurrency = 0",
            "concurrency = 65",
            "endpoint = \"localhost\"",
            "endpoint = \"ftp://x\"",
            "region = \"eu west\"",
            "timeout = \"0s\"",
        ] {
            let c = config(bad).unwrap();
            let err = CloudWatchSink::new("cw", &c, Adjustments::default()).unwrap_err();
            assert!(err.to_string().contains("cw"), "{bad}: {err}");
        }
        for bad in ["oversize = \"cut\"", "colour = 1", "too_old = \"keep\""] {
            assert!(config(bad).is_err(), "{bad} was accepted");
        }
        assert!(toml::from_str::<CloudWatchConfig>("group = \"{x\"\nstream = \"s\"").is_err());
    }

    #[test]
    fn readme_example_is_a_valid_config() {
        let doc = include_str!("../../../../README.md");
        let start = doc
            .find("[sinks.cloudwatch]\ntype = \"cloudwatch_logs\"")
            .unwrap();
        let end = start + doc[start..].find("```").unwrap();
        let table: toml::Table = toml::from_str(&doc[start..end]).unwrap();
        let mut sink = table["sinks"]["cloudwatch"].as_table().unwrap().clone();
        assert_eq!(
            sink.remove("type").unwrap().as_str(),
            Some("cloudwatch_logs")
        );
        let c: CloudWatchConfig = sink.try_into().unwrap();
        assert_eq!(c.retention_days, Some(30));
        assert!(CloudWatchSink::new("cloudwatch", &c, Adjustments::default()).is_ok());
    }

    #[test]
    fn rejections_follow_the_service_indices() {
        let r = Rejections {
            too_old_end: Some(2),
            expired_end: Some(3),
            too_new_start: Some(5),
        };
        let verdicts: Vec<_> = (0..7).map(|i| r.verdict(i)).collect();
        assert_eq!(
            verdicts,
            [
                Some("too_old"),
                Some("too_old"),
                Some("too_old"),
                None,
                None,
                Some("too_new"),
                Some("too_new")
            ]
        );
        assert_eq!(Rejections::default().verdict(0), None);
    }

    #[test]
    fn worst_failure_wins() {
        assert!(worst(vec![]).is_none());
        let e = worst(vec![
            DeliverError::new(FailureKind::Throttled, "a"),
            DeliverError::new(FailureKind::Refused, "b"),
            DeliverError::new(FailureKind::Unavailable, "c"),
        ])
        .unwrap();
        assert_eq!(e.kind, FailureKind::Refused);
        assert_eq!(e.message, "b (and 2 more failed streams)");
    }

    #[test]
    fn prepare_reads_names_and_timestamps() {
        let c = config("").unwrap();
        let sink = CloudWatchSink::new("cw", &c, Adjustments::default()).unwrap();
        let batch = vec![
            Pending::new(
                r#"{"timestamp":"2026-11-22T10:00:00.123Z","host":"n:1","k8s":{"namespace":"shop"}}"#,
            ),
            Pending::new(r#"{"observed_timestamp":"2026-11-22T10:00:01Z","host":"n2"}"#),
            Pending::new(&b"not json \xff"[..]),
        ];
        let events = sink.prepare(&batch, 42);
        assert_eq!(events[0].group, "/logferry/shop");
        assert_eq!(events[0].stream, "n_1");
        assert_eq!(events[0].timestamp, 1_795_341_600_123);
        assert_eq!(events[1].group, "/logferry/unknown");
        assert_eq!(events[1].timestamp, 1_795_341_601_000);
        assert_eq!(events[2].timestamp, 42);
        assert_eq!(events[2].stream, "unknown");
        assert_eq!(events[2].message, "not json \u{fffd}");
    }
}
