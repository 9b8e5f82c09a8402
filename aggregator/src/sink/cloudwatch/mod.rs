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
//! - `InvalidParameterException` (or HTTP 413) for a request: the service will not take
//!   something in it. The request is split in halves, and the halves sent in order, until
//!   the event at fault is alone; that event is rejected (to the dead-letter store, with
//!   the service's answer, counted as `invalid`) and every other event is delivered. One
//!   bad event never blocks its queue.
//! - Credentials and permissions (`AccessDeniedException`, `UnrecognizedClientException`,
//!   invalid or expired tokens, signatures), any other 4xx, and a missing region or
//!   credentials: [`FailureKind::Refused`]: retried with the longest backoff, never
//!   dropped.
//!
//! With `create = true`, a new stream is created before its first request, and its group
//! too unless already seen. Creating a group without the permission is not an error by
//! itself (groups are often managed elsewhere): only if the stream then finds no group.
//! Failing to set the retention of a new group is logged as an error and the events are
//! sent anyway; it is tried again on later uses of the group, after a wait that doubles
//! from `retry.initial_backoff` to `retry.max_backoff`, until it succeeds.
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
mod config;
mod errors;
mod resources;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_cloudwatchlogs::config::{Credentials, Region};
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use aws_sdk_cloudwatchlogs::Client;
use futures_util::StreamExt;
use serde_json::Value;

use self::batcher::{EventIn, Piece, Plan, Policy, StreamPlan, TimeWindow};
pub use self::config::{CloudWatchConfig, MAX_CONCURRENCY, RETENTION_DAYS};
use self::errors::{classify, worst, Failure};
use self::resources::Known;
use super::remote::{Adjustments, BoxFuture, Deliver, DeliverError, FailureKind, Outcome, Pending};
use super::template::event_millis;

/// Most characters of the service's answer kept in a dead letter's reason.
const MAX_REASON_CHARS: usize = 300;

/// Most partly delivered split events remembered (see [`CloudWatchSink`]).
const MAX_PARTIAL: usize = 1024;

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
        self.retry_retention(client, &group).await;
        for request in requests {
            // Parts of the request still to send, the next last; a request the service
            // finds invalid is split in halves until the event at fault is alone.
            let mut todo = vec![request];
            while let Some(mut part) = todo.pop() {
                match self.put(client, &group, &stream, &part).await {
                    Ok(Put::Taken(rejected)) => {
                        for (i, piece) in part.iter().enumerate() {
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
                    Ok(Put::Invalid(message)) if part.len() == 1 => {
                        let said: String = message.chars().take(MAX_REASON_CHARS).collect();
                        out.pieces.push((
                            part[0].index,
                            PieceVerdict::Rejected(
                                "invalid",
                                format!("CloudWatch Logs refused the event: {said}"),
                            ),
                        ));
                    }
                    Ok(Put::Invalid(_)) => {
                        let second = part.split_off(part.len() / 2);
                        todo.push(second);
                        todo.push(part);
                    }
                    Err(e) => {
                        out.error = Some(DeliverError {
                            message: format!("{group} / {stream}: {}", e.message),
                            ..e
                        });
                        return out;
                    }
                }
            }
        }
        out
    }

    /// One `PutLogEvents`; on `ResourceNotFoundException` creates the group and stream (if
    /// `create`) and sends it again once.
    async fn put(
        &self,
        client: &Client,
        group: &str,
        stream: &str,
        request: &[Piece],
    ) -> Result<Put, DeliverError> {
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
                    return Ok(Put::Taken(Rejections {
                        too_old_end: info.and_then(|i| i.too_old_log_event_end_index()),
                        expired_end: info.and_then(|i| i.expired_log_event_end_index()),
                        too_new_start: info.and_then(|i| i.too_new_log_event_start_index()),
                    }));
                }
                Err(e) => match classify(&e, "PutLogEvents") {
                    Failure::NotFound(_) if self.config.create && !created => {
                        created = true;
                        self.forget(group, stream);
                        self.create(client, group, stream).await?;
                    }
                    Failure::Invalid(message) => return Ok(Put::Invalid(message)),
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

/// What the service said to one `PutLogEvents`.
#[derive(Debug)]
enum Put {
    /// Taken, but for the events it names.
    Taken(Rejections),
    /// Refused as a whole as invalid (`InvalidParameterException`, 413): split it.
    Invalid(String),
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
mod tests;
