//! The `http` sink: POSTs batches of events as JSON lines (`application/x-ndjson`, one
//! output event per line, optionally gzip-compressed) to any HTTP endpoint, so events can
//! reach what has no sink of its own.
//!
//! Answers: 2xx delivers the batch; 408, 429 and 5xx are retried (honouring
//! `Retry-After` in seconds); 413, 400 and 422 split the batch in halves until the
//! request is a single event, which is then refused for good (a dead letter, with the
//! status and the start of the answer as the reason): one bad event never takes its
//! batch with it. Every other answer (401, 403, 404, a redirect, ...) says the request as
//! a whole cannot succeed as configured: it is retried with the longest backoff and
//! logged, so fixing the URL or the token loses nothing. Redirects are not followed (a
//! POST redirected with 301/302/303 would be re-sent as a GET without its body).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::queue::{QueueConfig, RetryConfig};
use super::remote::{BatchHint, BoxFuture, Deliver, DeliverError, FailureKind, Outcome, Pending};

/// `type = "http"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSinkConfig {
    /// Where batches are POSTed (`http://` or `https://`).
    pub url: String,
    /// `gzip` (default) or `none`.
    #[serde(default)]
    pub compression: HttpCompression,
    /// A bearer token sent as `Authorization: Bearer ...`.
    #[serde(default)]
    pub token: Option<String>,
    /// A file holding the bearer token (one trailing newline is ignored).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A CA bundle to trust instead of the system's roots.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Time limit per request (default 30 s).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Most events per request (default 10,000).
    #[serde(default = "default_max_events")]
    pub max_events: usize,
    /// Most bytes of JSON lines per request before compression (default 1 MiB).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// The sink's queue.
    #[serde(default)]
    pub queue: QueueConfig,
    /// Backoff between failed deliveries.
    #[serde(default)]
    pub retry: RetryConfig,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_max_events() -> usize {
    10_000
}
fn default_max_bytes() -> usize {
    1 << 20
}

/// Request body compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum HttpCompression {
    /// `Content-Encoding: gzip`.
    #[default]
    Gzip,
    /// Plain JSON lines.
    None,
}

/// The `http` sink.
#[derive(Debug)]
pub struct HttpSink {
    client: reqwest::Client,
    url: reqwest::Url,
    compression: HttpCompression,
    headers: reqwest::header::HeaderMap,
    hint: BatchHint,
}

impl HttpSink {
    /// Checks the config (URL, headers, token, CA) and builds the client.
    pub fn new(config: &HttpSinkConfig) -> anyhow::Result<HttpSink> {
        use anyhow::Context;
        let url = reqwest::Url::parse(&config.url).context("url")?;
        if !matches!(url.scheme(), "http" | "https") {
            anyhow::bail!("url: {} is not an http:// or https:// URL", url.scheme());
        }
        let mut headers = reqwest::header::HeaderMap::new();
        for (k, v) in &config.headers {
            let name = reqwest::header::HeaderName::try_from(k.as_str())
                .with_context(|| format!("headers: {k:?} is not a header name"))?;
            let value = reqwest::header::HeaderValue::try_from(v.as_str())
                .with_context(|| format!("headers.{k}: not a valid header value"))?;
            headers.insert(name, value);
        }
        let token = match (&config.token, &config.token_file) {
            (Some(_), Some(_)) => anyhow::bail!("token and token_file: set one, not both"),
            (Some(t), None) => Some(t.clone()),
            (None, Some(f)) => {
                let t = std::fs::read_to_string(f)
                    .with_context(|| format!("token_file {}", f.display()))?;
                Some(t.strip_suffix('\n').unwrap_or(&t).to_owned())
            }
            (None, None) => None,
        };
        if let Some(t) = token {
            let mut v = reqwest::header::HeaderValue::try_from(format!("Bearer {t}"))
                .context("token: not a valid header value")?;
            v.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
        let tls = match &config.ca {
            Some(ca) => logferry_shared::tls::client_config(Some(ca), None)
                .with_context(|| format!("ca {}", ca.display()))?,
            None => match logferry_shared::tls::client_config(None, None) {
                Ok(t) => t,
                Err(_) if url.scheme() == "http" => {
                    rustls::ClientConfig::builder_with_provider(logferry_shared::tls::provider())
                        .with_safe_default_protocol_versions()?
                        .with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth()
                }
                Err(e) => return Err(e).context("no CA to check the server with; set ca"),
            },
        };
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()
            .context("building the HTTP client")?;
        Ok(HttpSink {
            client,
            url,
            compression: config.compression,
            headers,
            hint: BatchHint {
                max_events: config.max_events.max(1),
                max_bytes: config.max_bytes.max(1),
            },
        })
    }

    /// Sends events `idx` of `batch` as one request.
    async fn post(&self, batch: &[Pending], idx: &[usize]) -> Result<Answer, DeliverError> {
        let mut body = Vec::with_capacity(idx.iter().map(|&i| batch[i].line.len() + 1).sum());
        for &i in idx {
            body.extend_from_slice(&batch[i].line);
            body.push(b'\n');
        }
        let mut req = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson");
        if self.compression == HttpCompression::Gzip {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(body.len() / 4),
                flate2::Compression::fast(),
            );
            enc.write_all(&body)
                .and_then(|()| enc.finish())
                .map(|gz| body = gz)
                .map_err(|e| DeliverError::new(FailureKind::Unavailable, format!("gzip: {e}")))?;
            req = req.header(reqwest::header::CONTENT_ENCODING, "gzip");
        }
        let resp = req.body(body).send().await.map_err(|e| {
            // Without the URL: it may hold a secret.
            let what = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "cannot connect"
            } else {
                "request failed"
            };
            DeliverError::new(
                FailureKind::Unavailable,
                format!("http sink: {what}: {}", e.without_url()),
            )
        })?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        if status.is_success() {
            return Ok(Answer::Taken);
        }
        let text = resp.text().await.unwrap_or_default();
        let detail: String = text.chars().take(200).collect();
        let message = format!("http sink: answered {status}: {detail}");
        let fail = |kind| DeliverError {
            kind,
            message: message.clone(),
            retry_after,
        };
        match status.as_u16() {
            408 | 500..=599 => Err(fail(FailureKind::Unavailable)),
            429 => Err(fail(FailureKind::Throttled)),
            400 | 413 | 422 => Ok(Answer::Refused(message)),
            _ => Err(fail(FailureKind::Refused)),
        }
    }
}

/// What the endpoint said to a request.
enum Answer {
    /// 2xx.
    Taken,
    /// 400, 413 or 422: something in the request; split it until the event is found.
    Refused(String),
}

impl Deliver for HttpSink {
    fn hint(&self) -> BatchHint {
        self.hint
    }

    fn deliver<'a>(
        &'a mut self,
        batch: &'a mut [Pending],
    ) -> BoxFuture<'a, Result<(), DeliverError>> {
        Box::pin(async move {
            let waiting: Vec<usize> = (0..batch.len())
                .filter(|&i| batch[i].is_waiting())
                .collect();
            // Requests to make, as index lists; 413 splits one into two.
            let mut todo = vec![waiting];
            while let Some(idx) = todo.pop() {
                if idx.is_empty() {
                    continue;
                }
                match self.post(batch, &idx).await? {
                    Answer::Taken => {
                        for i in idx {
                            batch[i].outcome = Outcome::Delivered;
                        }
                    }
                    Answer::Refused(reason) if idx.len() == 1 => {
                        batch[idx[0]].outcome = Outcome::Rejected(reason);
                    }
                    Answer::Refused(_) => {
                        let (a, b) = idx.split_at(idx.len() / 2);
                        // Last pushed goes first: keep the order.
                        todo.push(b.to_vec());
                        todo.push(a.to_vec());
                    }
                }
            }
            Ok(())
        })
    }
}
