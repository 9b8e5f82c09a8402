//! Generic webhooks: a POST of the [`Notification`] as JSON, with the configured headers
//! and, when a secret is set, `Authorization: Bearer <secret>`.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};

use super::config::{NotifierConfig, SecretRef};
use super::{http_client, post_json, Notifier, SendError, SendFuture};
use crate::rules::Notification;

/// A JSON webhook.
pub struct Webhook {
    name: String,
    url: String,
    headers: HeaderMap,
    client: reqwest::Client,
}

impl Webhook {
    /// From `[notifiers.NAME] type = "webhook"`.
    pub fn new(name: &str, cfg: &NotifierConfig) -> Result<Webhook, String> {
        let NotifierConfig::Webhook {
            url,
            headers,
            secret,
            secret_env,
            secret_file,
            timeout,
        } = cfg
        else {
            return Err("not a webhook notifier".into());
        };
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            let name =
                HeaderName::from_bytes(k.as_bytes()).map_err(|_| format!("bad header name {k}"))?;
            let value =
                HeaderValue::from_str(v).map_err(|_| format!("bad value for header {k}"))?;
            map.insert(name, value);
        }
        let secret = SecretRef {
            value: secret.clone(),
            env: secret_env.clone(),
            file: secret_file.clone(),
        }
        .read()?;
        if let Some(s) = secret {
            let mut v = HeaderValue::from_str(&format!("Bearer {}", s.trim()))
                .map_err(|_| "the secret has characters not allowed in a header".to_owned())?;
            v.set_sensitive(true);
            map.insert(AUTHORIZATION, v);
        }
        Ok(Webhook {
            name: name.to_owned(),
            url: url.clone(),
            headers: map,
            client: http_client(*timeout)?,
        })
    }
}

impl Notifier for Webhook {
    fn name(&self) -> &str {
        &self.name
    }

    fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            let body = serde_json::to_vec(n).map_err(|e| SendError::permanent(e.to_string()))?;
            post_json(
                self.client.post(&self.url).headers(self.headers.clone()),
                body,
                "webhook",
            )
            .await
        })
    }
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
