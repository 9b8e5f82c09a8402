//! The Azure Event Hubs sink (`type = "eventhubs"`): sends every event as one Event Hubs
//! event over AMQP 1.0, through the `azure_messaging_eventhubs` client.
//!
//! # Mapping
//!
//! The event body is the event's JSON line, byte for byte (no trailing newline), with
//! content type `application/json`. `properties` adds application properties rendered from
//! templates. `partition_key` (a template) sets the partition key, so events with the same
//! key land on the same partition in order; `partition_id` sends everything to one
//! partition; with neither, the service spreads events over the partitions.
//!
//! # Batching
//!
//! [`Deliver::deliver`] groups the waiting events of a call by partition key, keeping their
//! order, and fills `EventDataBatch`es per key up to the size the service announces on the
//! sender link (its max-message-size: 1 MiB on Standard and above, 256 KiB on Basic). Each
//! batch is one AMQP transfer, so the service takes or refuses it whole: the events of an
//! accepted batch are marked delivered at once. An event too large for an empty batch is
//! rejected for good (it goes to the dead-letter store) and counted as `too_large` in
//! `logferry_sink_adjusted_events_total`.
//!
//! # Failures and retries
//!
//! The first batch that fails ends the call with an error; the delivery task retries the
//! events still waiting after its backoff, so batches of one key are never reordered.
//! `com.microsoft:server-busy` and `amqp:resource-limit-exceeded` are
//! [`FailureKind::Throttled`]; unauthorized access, an unknown or disabled Event Hub and
//! credentials that cannot get a token are [`FailureKind::Refused`]; everything else
//! (connection refused or lost, timeouts, internal errors) is [`FailureKind::Unavailable`].
//! The client's own retries are kept short (one retry, which also reattaches a lost link or
//! reconnects a lost connection) so that failures reach the delivery task, which owns
//! backoff and metrics. A send that times out or loses its connection may still have been
//! stored by the service, so delivery is at least once, as for every sink.
//!
//! # Connections
//!
//! The sink connects on its first delivery, not at startup, and keeps one connection (one
//! `ProducerClient`, with one sender link per partition key target) for its lifetime. After
//! a failure other than throttling or refusal it drops the connection, and the next delivery
//! opens a new one. [`Deliver::close`] closes the connection cleanly.
//!
//! # Credentials
//!
//! A SAS connection string (inline, from an environment variable or from a file, read at
//! startup), from which the client signs and renews its own tokens; or Microsoft Entra ID
//! with `namespace` and `credential`: `managed_identity`, `workload_identity` (AKS) or
//! `developer_tools` (Azure CLI, then Azure Developer CLI). Either way the token is sent
//! over the connection's claims-based-security link (`$cbs`). The connection uses TLS
//! (rustls with the ring provider, installed as the process default if none is) and the
//! operating system's trust store.

mod config;

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use azure_core_amqp::error::{AmqpErrorCondition, AmqpErrorKind};
use azure_core_amqp::AmqpError;
use azure_messaging_eventhubs::models::EventData;
use azure_messaging_eventhubs::{EventDataBatchOptions, ProducerClient, RetryOptions};
use serde_json::Value;

use super::remote::{Adjustments, BoxFuture, Deliver, DeliverError, FailureKind, Outcome, Pending};
use super::template::Template;

use config::Auth;
pub use config::{CredentialKind, EventHubsConfig};

/// The application id the client announces (user agent, link names).
const APPLICATION_ID: &str = "logferry";

/// The content type of every event.
const CONTENT_TYPE: &str = "application/json";

/// A sink that sends events to an Azure Event Hub. See the module docs.
pub struct EventHubsSink {
    name: String,
    event_hub: String,
    auth: Auth,
    /// Built once for Entra ID, so a missing identity fails at startup.
    credential: Option<Arc<dyn TokenCredential>>,
    endpoint: Option<String>,
    partition_key: Option<Template>,
    partition_id: Option<String>,
    properties: Vec<(String, Template)>,
    timeout: Duration,
    adjustments: Adjustments,
    producer: Option<ProducerClient>,
}

impl std::fmt::Debug for EventHubsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHubsSink")
            .field("name", &self.name)
            .field("event_hub", &self.event_hub)
            .field("auth", &self.auth)
            .field("endpoint", &self.endpoint)
            .field("connected", &self.producer.is_some())
            .finish_non_exhaustive()
    }
}

/// The events of one partition key, in order, with what each carries besides its body.
struct Group {
    key: Option<String>,
    events: Vec<(usize, Vec<(String, String)>)>,
}

impl EventHubsSink {
    /// Checks `config` and resolves its credentials; connects on the first delivery.
    pub fn new(
        name: &str,
        config: &EventHubsConfig,
        adjustments: Adjustments,
    ) -> anyhow::Result<EventHubsSink> {
        use anyhow::Context;
        let auth = config
            .auth()
            .with_context(|| format!("sink {name:?} (eventhubs)"))?;
        let credential = match &auth {
            Auth::ConnectionString(_) => None,
            Auth::EntraId {
                credential,
                client_id,
                ..
            } => Some(
                entra_credential(*credential, client_id.clone())
                    .with_context(|| format!("sink {name:?} (eventhubs): credential"))?,
            ),
        };
        Ok(EventHubsSink {
            name: name.to_owned(),
            event_hub: config.event_hub.clone(),
            auth,
            credential,
            endpoint: config.endpoint.clone(),
            partition_key: config.partition_key.clone(),
            partition_id: config.partition_id.clone(),
            properties: config
                .properties
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            timeout: config.timeout,
            adjustments,
            producer: None,
        })
    }

    /// True while the sink holds a connection (tests, admin).
    pub fn is_connected(&self) -> bool {
        self.producer.is_some()
    }

    async fn connect(&self) -> Result<ProducerClient, DeliverError> {
        install_crypto_provider();
        let mut builder = ProducerClient::builder()
            .with_application_id(APPLICATION_ID.to_owned())
            .with_retry_options(client_retries());
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_custom_endpoint(endpoint.clone());
        }
        let (auth, credential, hub) = (&self.auth, &self.credential, self.event_hub.as_str());
        let open = async move {
            match (auth, credential) {
                (Auth::ConnectionString(text), _) => {
                    builder.open_with_connection_string(text, Some(hub)).await
                }
                (Auth::EntraId { namespace, .. }, Some(credential)) => {
                    builder.open(namespace, hub, credential.clone()).await
                }
                (Auth::EntraId { .. }, None) => {
                    Err(azure_messaging_eventhubs::EventHubsError::from(
                        azure_messaging_eventhubs::error::ErrorKind::SimpleMessage(
                            "no Entra ID credential".into(),
                        ),
                    ))
                }
            }
        };
        match tokio::time::timeout(self.timeout, open).await {
            Ok(Ok(producer)) => Ok(producer),
            Ok(Err(e)) => Err(deliver_error("connecting", &e)),
            Err(_) => Err(DeliverError::new(
                FailureKind::Unavailable,
                format!("connecting timed out after {:?}", self.timeout),
            )),
        }
    }

    /// Closes the connection, if any, waiting at most a few seconds.
    async fn disconnect(&mut self) {
        if let Some(producer) = self.producer.take() {
            let wait = self.timeout.min(Duration::from_secs(5));
            match tokio::time::timeout(wait, producer.close()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(sink = %self.name, error = %e, "closing the Event Hubs connection failed")
                }
                Err(_) => {
                    tracing::debug!(sink = %self.name, "closing the Event Hubs connection timed out")
                }
            }
        }
    }

    /// The waiting events of `batch` grouped by partition key, in order of first
    /// appearance, each with its rendered properties.
    fn group(&self, batch: &[Pending]) -> Vec<Group> {
        let key_needs_event = self
            .partition_key
            .as_ref()
            .is_some_and(|t| !t.is_constant());
        let needs_event = key_needs_event || !self.properties.is_empty();
        let constant_key = match &self.partition_key {
            Some(t) if !key_needs_event => Some(t.render(&Value::Null)),
            _ => None,
        };
        let mut groups: Vec<Group> = Vec::new();
        let mut by_key: std::collections::HashMap<Option<String>, usize> =
            std::collections::HashMap::new();
        for (index, pending) in batch.iter().enumerate() {
            if !pending.is_waiting() {
                continue;
            }
            let event = if needs_event {
                serde_json::from_slice(&pending.line).unwrap_or(Value::Null)
            } else {
                Value::Null
            };
            let key = if key_needs_event {
                self.partition_key.as_ref().map(|t| t.render(&event))
            } else {
                constant_key.clone()
            };
            let properties = self
                .properties
                .iter()
                .map(|(name, t)| (name.clone(), t.render(&event)))
                .collect();
            let slot = *by_key.entry(key.clone()).or_insert_with(|| {
                groups.push(Group {
                    key,
                    events: Vec::new(),
                });
                groups.len() - 1
            });
            groups[slot].events.push((index, properties));
        }
        groups
    }

    async fn deliver_batch(&mut self, batch: &mut [Pending]) -> Result<(), DeliverError> {
        let groups = self.group(batch);
        if groups.is_empty() {
            return Ok(());
        }
        if self.producer.is_none() {
            self.producer = Some(self.connect().await?);
        }
        let result = match &self.producer {
            Some(producer) => {
                send_groups(
                    producer,
                    &self.adjustments,
                    self.partition_id.as_deref(),
                    self.timeout,
                    batch,
                    groups,
                )
                .await
            }
            None => Ok(()),
        };
        if let Err(e) = &result {
            if e.kind == FailureKind::Unavailable {
                // The connection may be broken in a way the client does not notice: start
                // over with a new one on the next delivery.
                self.disconnect().await;
            }
        }
        result
    }
}

impl Deliver for EventHubsSink {
    fn deliver<'a>(
        &'a mut self,
        batch: &'a mut [Pending],
    ) -> BoxFuture<'a, Result<(), DeliverError>> {
        Box::pin(self.deliver_batch(batch))
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(self.disconnect())
    }
}

/// Sends the groups one batch at a time, marking events as their batch is accepted.
async fn send_groups(
    producer: &ProducerClient,
    adjustments: &Adjustments,
    partition_id: Option<&str>,
    timeout: Duration,
    batch: &mut [Pending],
    groups: Vec<Group>,
) -> Result<(), DeliverError> {
    for group in groups {
        let mut next = 0;
        while next < group.events.len() {
            let options = EventDataBatchOptions {
                partition_key: group.key.clone(),
                partition_id: partition_id.map(str::to_owned),
                max_size_in_bytes: None,
            };
            let created = tokio::time::timeout(timeout, producer.create_batch(Some(options))).await;
            let out = match created {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => return Err(deliver_error("opening the sender link", &e)),
                Err(_) => {
                    return Err(DeliverError::new(
                        FailureKind::Unavailable,
                        format!("opening the sender link timed out after {timeout:?}"),
                    ))
                }
            };
            let mut taken: Vec<usize> = Vec::new();
            while let Some((index, properties)) = group.events.get(next) {
                let pending = &mut batch[*index];
                let mut data = EventData::builder()
                    .with_body(pending.line.to_vec())
                    .with_content_type(CONTENT_TYPE.to_owned());
                for (name, value) in properties {
                    data = data.add_property(name.clone(), value.as_str());
                }
                match out.try_add_event_data(data.build(), None) {
                    Ok(true) => taken.push(*index),
                    Ok(false) if taken.is_empty() => {
                        pending.outcome = Outcome::Rejected(format!(
                            "the event ({} bytes) is larger than the largest message the Event Hub accepts",
                            pending.line.len()
                        ));
                        adjustments.count("too_large", 1);
                    }
                    Ok(false) => break,
                    Err(e) => {
                        pending.outcome =
                            Outcome::Rejected(format!("the event cannot be encoded: {e}"));
                        adjustments.count("unencodable", 1);
                    }
                }
                next += 1;
            }
            if taken.is_empty() {
                continue;
            }
            match tokio::time::timeout(timeout, producer.send_batch(out, None)).await {
                Ok(Ok(())) => {
                    for index in taken {
                        batch[index].outcome = Outcome::Delivered;
                    }
                }
                Ok(Err(e)) => return Err(deliver_error("sending a batch", &e)),
                Err(_) => {
                    return Err(DeliverError::new(
                        FailureKind::Unavailable,
                        format!("sending a batch timed out after {timeout:?}"),
                    ))
                }
            }
        }
    }
    Ok(())
}

/// The client's own retries: one, soon, so that a lost link or connection is re-established
/// within the call and everything else reaches the delivery task quickly.
fn client_retries() -> RetryOptions {
    RetryOptions {
        initial_delay: azure_core::time::Duration::milliseconds(100),
        max_delay: azure_core::time::Duration::seconds(1),
        max_total_elapsed: azure_core::time::Duration::seconds(10),
        max_retries: 1,
    }
}

/// Installs rustls's ring provider as the process default, unless one already is: the
/// client's TLS setup asks for the process default, and more than one provider is compiled
/// in, so rustls would not pick one by itself.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn entra_credential(
    kind: CredentialKind,
    client_id: Option<String>,
) -> azure_core::Result<Arc<dyn TokenCredential>> {
    Ok(match kind {
        CredentialKind::ManagedIdentity => {
            let options = azure_identity::ManagedIdentityCredentialOptions {
                user_assigned_id: client_id.map(azure_identity::UserAssignedId::ClientId),
                ..Default::default()
            };
            azure_identity::ManagedIdentityCredential::new(Some(options))?
        }
        CredentialKind::WorkloadIdentity => azure_identity::WorkloadIdentityCredential::new(None)?,
        CredentialKind::DeveloperTools => azure_identity::DeveloperToolsCredential::new(None)?,
    })
}

fn deliver_error(what: &str, error: &azure_messaging_eventhubs::EventHubsError) -> DeliverError {
    DeliverError::new(classify(error), format!("{what}: {error}"))
}

/// What kind of failure `error` is: see the module docs.
fn classify(error: &(dyn std::error::Error + 'static)) -> FailureKind {
    use azure_messaging_eventhubs::error::ErrorKind as HubKind;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    for _ in 0..32 {
        let Some(e) = cause else { break };
        if let Some(hub) = e.downcast_ref::<azure_messaging_eventhubs::EventHubsError>() {
            if let HubKind::SendRejected(Some(described)) = &hub.kind {
                return by_condition(&described.condition);
            }
        }
        if let Some(amqp) = e.downcast_ref::<AmqpError>() {
            match amqp.kind() {
                AmqpErrorKind::AmqpDescribedError(described) => {
                    return by_condition(&described.condition)
                }
                AmqpErrorKind::ManagementStatusCode(code, _) => {
                    return match u16::from(*code) {
                        401 | 403 | 404 => FailureKind::Refused,
                        429 => FailureKind::Throttled,
                        _ => FailureKind::Unavailable,
                    }
                }
                _ => {}
            }
        }
        if let Some(core) = e.downcast_ref::<azure_core::Error>() {
            if matches!(core.kind(), azure_core::error::ErrorKind::Credential) {
                return FailureKind::Refused;
            }
        }
        cause = e.source();
    }
    FailureKind::Unavailable
}

fn by_condition(condition: &AmqpErrorCondition) -> FailureKind {
    match condition {
        AmqpErrorCondition::ServerBusyError | AmqpErrorCondition::ResourceLimitExceeded => {
            FailureKind::Throttled
        }
        AmqpErrorCondition::UnauthorizedAccess
        | AmqpErrorCondition::NotFound
        | AmqpErrorCondition::EntityDisabledError
        | AmqpErrorCondition::PublisherRevokedError => FailureKind::Refused,
        _ => FailureKind::Unavailable,
    }
}

#[cfg(test)]
mod tests;
