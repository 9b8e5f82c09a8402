//! A blocking HTTP(S) client for the tests, and helpers for Prometheus text.
//!
//! reqwest is built without a default crypto provider, so every client gets a
//! preconfigured rustls config from [`logferry_shared::tls::client_config`] trusting the
//! test CA; the same client then also speaks plain HTTP to the admin endpoints.

use std::time::Duration;

use anyhow::Context;

use crate::TestDir;

/// Per-request timeout of test clients.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// A client trusting the test CA of `dir`; with `client_cert`, it presents the test
/// client certificate (mTLS).
pub fn client(dir: &TestDir, client_cert: bool) -> anyhow::Result<reqwest::blocking::Client> {
    let ca = dir.cert("ca.pem");
    let (cert, key) = (dir.cert("client.pem"), dir.cert("client-key.pem"));
    let identity = client_cert.then_some((cert.as_path(), key.as_path()));
    client_with(&ca, identity)
}

/// A client trusting `ca`, presenting `identity` (certificate, key) when given.
pub fn client_with(
    ca: &std::path::Path,
    identity: Option<(&std::path::Path, &std::path::Path)>,
) -> anyhow::Result<reqwest::blocking::Client> {
    let tls = logferry_shared::tls::client_config(Some(ca), identity)
        .context("building the client TLS config")?;
    reqwest::blocking::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        // Each request on a fresh connection: a refused request must not poison the next.
        .pool_max_idle_per_host(0)
        .build()
        .context("building the HTTP client")
}

/// GET `url`: (status, body text).
pub fn get(client: &reqwest::blocking::Client, url: &str) -> anyhow::Result<(u16, String)> {
    let resp = client
        .get(url)
        .send()
        .with_context(|| format!("GET {url}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .text()
        .with_context(|| format!("reading the body of GET {url}"))?;
    Ok((status, body))
}

/// An answer from the ingest endpoint.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Raw body text.
    pub text: String,
    /// The body as JSON, if it is JSON.
    pub json: Option<serde_json::Value>,
}

impl Answer {
    /// A top-level string field of the JSON body.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.json.as_ref()?.get(name)?.as_str()
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.text)
    }
}

/// How to send a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyMode {
    /// With `Content-Length`.
    Sized,
    /// Streamed without a length (chunked / HTTP/2 data frames), so only the server's
    /// running count can catch an oversized body.
    Streamed,
}

/// POSTs `body` to `url` with `Authorization: Bearer <token>` when a token is given.
pub fn post(
    client: &reqwest::blocking::Client,
    url: &str,
    token: Option<&str>,
    body: Vec<u8>,
    mode: BodyMode,
) -> anyhow::Result<Answer> {
    let mut req = client
        .post(url)
        .header("content-type", "application/vnd.logferry.batch");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req = match mode {
        BodyMode::Sized => req.body(body),
        BodyMode::Streamed => req.body(reqwest::blocking::Body::new(std::io::Cursor::new(body))),
    };
    let resp = req.send().with_context(|| format!("POST {url}"))?;
    let status = resp.status().as_u16();
    let text = resp
        .text()
        .with_context(|| format!("reading the answer of POST {url}"))?;
    let json = serde_json::from_str(&text).ok();
    Ok(Answer { status, text, json })
}

/// The value of one series in Prometheus text, e.g.
/// `logferry_ingest_batches_total{result="accepted"}` or
/// `logferry_ingest_auth_failures_total`; `None` when absent.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let rest = l.strip_prefix(series)?;
        let value = rest.strip_prefix(' ')?;
        value.split_whitespace().next()?.parse().ok()
    })
}
