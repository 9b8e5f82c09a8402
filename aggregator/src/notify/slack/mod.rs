//! Slack incoming webhooks: a POST of `{"text": ...}` to the webhook URL. The URL is a
//! secret (whoever has it can post) and is never logged.

use super::config::{NotifierConfig, SecretRef};
use super::{http_client, post_json, text, Notifier, SendFuture};
use crate::rules::Notification;

/// A Slack incoming webhook.
pub struct Slack {
    name: String,
    url: String,
    client: reqwest::Client,
}

impl Slack {
    /// From `[notifiers.NAME] type = "slack"`.
    pub fn new(name: &str, cfg: &NotifierConfig) -> Result<Slack, String> {
        let NotifierConfig::Slack {
            webhook_url,
            webhook_url_env,
            webhook_url_file,
            timeout,
        } = cfg
        else {
            return Err("not a slack notifier".into());
        };
        let url = SecretRef {
            value: webhook_url.clone(),
            env: webhook_url_env.clone(),
            file: webhook_url_file.clone(),
        }
        .read()?
        .ok_or("no webhook_url")?;
        Ok(Slack {
            name: name.to_owned(),
            url: url.trim().to_owned(),
            client: http_client(*timeout)?,
        })
    }
}

/// The JSON body Slack receives.
pub fn body(n: &Notification) -> serde_json::Value {
    serde_json::json!({ "text": text(n) })
}

impl Notifier for Slack {
    fn name(&self) -> &str {
        &self.name
    }

    fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(post_json(
            self.client.post(&self.url),
            body(n).to_string().into_bytes(),
            "slack",
        ))
    }
}

impl std::fmt::Debug for Slack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slack")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
