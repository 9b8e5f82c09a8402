//! Log groups and streams: which are known to exist, creating them (and setting a new
//! group's retention, tried again later when that fails) on first use and when the
//! service says one is missing.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use aws_sdk_cloudwatchlogs::Client;

use super::errors::{already_exists, classify, Failure};
use super::CloudWatchSink;
use crate::sink::remote::{DeliverError, FailureKind};

/// Groups and streams known to exist (created or used successfully in this run).
#[derive(Debug, Default)]
pub(super) struct Known {
    pub(super) groups: HashSet<String>,
    pub(super) streams: HashSet<(String, String)>,
    /// Groups this sink created whose retention could not be set yet.
    pub(super) retention: HashMap<String, RetentionRetry>,
}

/// When to try again to set a group's retention.
#[derive(Debug)]
pub(super) struct RetentionRetry {
    due: Instant,
    wait: Duration,
    failures: u32,
}

impl CloudWatchSink {
    pub(super) fn is_known(&self, group: &str, stream: &str) -> bool {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known
            .streams
            .contains(&(group.to_owned(), stream.to_owned()))
    }

    pub(super) fn forget(&self, group: &str, stream: &str) {
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
    pub(super) async fn create(
        &self,
        client: &Client,
        group: &str,
        stream: &str,
    ) -> Result<(), DeliverError> {
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
                self.set_retention(client, group).await;
            }
            Err(e) if already_exists(&e) => {}
            Err(e) => return Err(classify(&e, "CreateLogGroup").into_error(self.config.create)),
        }
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.groups.insert(group.to_owned());
        Ok(())
    }

    /// Sets `retention_days` on a group this sink created. A failure holds no event back
    /// (the group takes events): it is logged, and tried again on a later use of the group
    /// ([`CloudWatchSink::retry_retention`]) after a wait that doubles from the sink's
    /// `retry.initial_backoff` up to its `retry.max_backoff`, until it succeeds.
    async fn set_retention(&self, client: &Client, group: &str) {
        let Some(days) = self.config.retention_days else {
            return;
        };
        let set = client
            .put_retention_policy()
            .log_group_name(group)
            .retention_in_days(i32::try_from(days).unwrap_or(i32::MAX))
            .send()
            .await;
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        match set {
            Ok(_) => {
                if let Some(r) = known.retention.remove(group) {
                    tracing::info!(sink = %self.name, group, days, failures = r.failures,
                        "set the retention of the log group after failing before");
                }
            }
            Err(e) => {
                let e = classify(&e, "PutRetentionPolicy").into_error(true);
                let retry = &self.config.retry;
                let r = known
                    .retention
                    .entry(group.to_owned())
                    .or_insert(RetentionRetry {
                        due: Instant::now(),
                        wait: Duration::ZERO,
                        failures: 0,
                    });
                r.failures += 1;
                r.wait = if r.failures == 1 {
                    retry.initial_backoff
                } else {
                    r.wait.saturating_mul(2).min(retry.max_backoff)
                };
                r.due = Instant::now() + r.wait;
                if r.failures == 1 {
                    tracing::error!(sink = %self.name, group, days, error = %e, retry_in = ?r.wait,
                        "could not set the retention of a new log group; events are sent anyway and it is tried again");
                } else {
                    tracing::debug!(sink = %self.name, group, error = %e, failures = r.failures,
                        retry_in = ?r.wait, "could not set the retention of the log group again");
                }
            }
        }
    }

    /// Tries again to set the retention of `group` if an earlier attempt failed and its
    /// wait is over (see [`CloudWatchSink::set_retention`]).
    pub(super) async fn retry_retention(&self, client: &Client, group: &str) {
        let due = {
            let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            match known.retention.get_mut(group) {
                Some(r) if r.due <= Instant::now() => {
                    // Claimed: streams of the group sending at the same time do not try too.
                    r.due = Instant::now() + r.wait;
                    true
                }
                _ => false,
            }
        };
        if due {
            self.set_retention(client, group).await;
        }
    }
}
