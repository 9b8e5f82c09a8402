//! `[sinks.NAME]` with `type = "eventhubs"`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::sink::queue::{QueueConfig, RetryConfig};
use crate::sink::template::Template;

/// The settings of an Event Hubs sink. Credentials come either from a SAS connection
/// string (`connection_string`, `connection_string_env` or `connection_string_file`: exactly
/// one) or from Microsoft Entra ID (`namespace` and `credential`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventHubsConfig {
    /// A SAS connection string
    /// (`Endpoint=sb://NS.servicebus.windows.net/;SharedAccessKeyName=...;SharedAccessKey=...`,
    /// optionally with `EntityPath`, which must then name `event_hub`).
    #[serde(default)]
    pub connection_string: Option<String>,
    /// The environment variable that holds the connection string (read at startup).
    #[serde(default)]
    pub connection_string_env: Option<String>,
    /// A file that holds the connection string (read at startup; surrounding whitespace is
    /// ignored).
    #[serde(default)]
    pub connection_string_file: Option<PathBuf>,
    /// The fully qualified namespace (`NS.servicebus.windows.net`), for Entra ID.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Which Entra ID credential to use with `namespace`.
    #[serde(default)]
    pub credential: Option<CredentialKind>,
    /// The client id of a user-assigned managed identity (`credential = "managed_identity"`;
    /// without it, the system-assigned identity).
    #[serde(default)]
    pub managed_identity_client_id: Option<String>,
    /// The Event Hub (the entity inside the namespace).
    pub event_hub: String,
    /// Connect here instead of the namespace's own address, e.g. an AMQP proxy
    /// (`amqps://proxy:5671`) or a local test peer (`amqp://127.0.0.1:PORT`). The
    /// namespace (from the connection string or `namespace`) is still what the token and
    /// the link addresses name.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The partition key, a template (`"{host}"`, `"{k8s.namespace}/{k8s.pod}"`): events
    /// with the same key go to the same partition, in order. Not with `partition_id`.
    #[serde(default)]
    pub partition_key: Option<Template>,
    /// Send every event to this partition. Not with `partition_key`.
    #[serde(default)]
    pub partition_id: Option<String>,
    /// Application properties set on every event: property name → template
    /// (`{ level = "{level}", namespace = "{k8s.namespace:-none}" }`).
    #[serde(default)]
    pub properties: BTreeMap<String, Template>,
    /// The longest a connection attempt or one batch send may take before it counts as
    /// failed (default 30s).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// The sink's durable queue.
    #[serde(default)]
    pub queue: QueueConfig,
    /// Backoff between failed deliveries.
    #[serde(default)]
    pub retry: RetryConfig,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

/// The Entra ID credentials the sink can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// The managed identity of the Azure VM, App Service or Arc machine
    /// (`managed_identity_client_id` selects a user-assigned one).
    ManagedIdentity,
    /// AKS workload identity: `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and
    /// `AZURE_FEDERATED_TOKEN_FILE`, as the workload identity webhook sets them.
    WorkloadIdentity,
    /// The developer's own login: the Azure CLI (`az login`), then the Azure Developer CLI.
    /// For workstations, not for production.
    DeveloperTools,
}

/// Where the credentials come from, resolved from an [`EventHubsConfig`].
#[derive(Clone, PartialEq)]
pub(crate) enum Auth {
    ConnectionString(String),
    EntraId {
        namespace: String,
        credential: CredentialKind,
        client_id: Option<String>,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::ConnectionString(_) => f.write_str("ConnectionString(<redacted>)"),
            Auth::EntraId {
                namespace,
                credential,
                ..
            } => write!(f, "EntraId({namespace}, {credential:?})"),
        }
    }
}

impl EventHubsConfig {
    /// What `validate` checks: the settings, and that the connection string (if any) can
    /// be read and parsed. Connects nowhere and asks no identity service for a token.
    pub fn check(&self) -> anyhow::Result<()> {
        self.auth().map(drop)
    }

    /// Checks the settings and resolves the credentials (reads the environment variable or
    /// the file a connection string comes from).
    pub(crate) fn auth(&self) -> anyhow::Result<Auth> {
        use anyhow::{bail, Context};
        if self.event_hub.trim().is_empty() {
            bail!("event_hub is empty");
        }
        if let Some(endpoint) = &self.endpoint {
            if !["amqp://", "amqps://"]
                .iter()
                .any(|s| endpoint.starts_with(s))
            {
                bail!("endpoint must be amqp://HOST:PORT or amqps://HOST:PORT, not {endpoint:?}");
            }
        }
        if self.partition_key.is_some() && self.partition_id.is_some() {
            bail!("partition_key and partition_id exclude each other: set one or neither");
        }
        if matches!(&self.partition_id, Some(p) if p.trim().is_empty()) {
            bail!("partition_id is empty");
        }
        let sources = [
            self.connection_string.is_some(),
            self.connection_string_env.is_some(),
            self.connection_string_file.is_some(),
        ]
        .iter()
        .filter(|s| **s)
        .count();
        let entra = self.namespace.is_some() || self.credential.is_some();
        if sources > 1 {
            bail!("set only one of connection_string, connection_string_env and connection_string_file");
        }
        if sources == 1 && entra {
            bail!("a connection string and namespace/credential exclude each other: use a SAS connection string or Entra ID");
        }
        if self.managed_identity_client_id.is_some()
            && self.credential != Some(CredentialKind::ManagedIdentity)
        {
            bail!("managed_identity_client_id needs credential = \"managed_identity\"");
        }
        if sources == 1 {
            let text = if let Some(s) = &self.connection_string {
                s.clone()
            } else if let Some(var) = &self.connection_string_env {
                std::env::var(var)
                    .with_context(|| format!("connection_string_env: reading ${var}"))?
            } else if let Some(path) = &self.connection_string_file {
                std::fs::read_to_string(path).with_context(|| {
                    format!("connection_string_file: reading {}", path.display())
                })?
            } else {
                String::new()
            };
            let text = text.trim().to_owned();
            let parsed: azure_messaging_eventhubs::ConnectionString = text
                .parse()
                .map_err(|e| anyhow::anyhow!("the connection string is not valid: {e}"))?;
            if let Some(entity) = &parsed.entity_path {
                if entity != &self.event_hub {
                    bail!(
                        "the connection string's EntityPath ({entity}) is not event_hub ({})",
                        self.event_hub
                    );
                }
            }
            return Ok(Auth::ConnectionString(text));
        }
        match (&self.namespace, self.credential) {
            (Some(ns), Some(credential)) => {
                if ns.trim().is_empty() || ns.contains('/') {
                    bail!("namespace must be a host name such as NS.servicebus.windows.net, not {ns:?}");
                }
                Ok(Auth::EntraId {
                    namespace: ns.clone(),
                    credential,
                    client_id: self.managed_identity_client_id.clone(),
                })
            }
            (Some(_), None) => bail!("namespace needs credential (managed_identity, workload_identity or developer_tools)"),
            (None, Some(_)) => bail!("credential needs namespace (NS.servicebus.windows.net)"),
            (None, None) => bail!("no credentials: set connection_string (or _env, _file), or namespace and credential"),
        }
    }
}
