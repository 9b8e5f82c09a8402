//! `POST /v1/logs` of the otlp input (OTLP/HTTP): token, content type and encoding
//! checks, the body read under its limits, decoded, mapped ([`super::map`]) and stored
//! in the inbox as one batch, and only then answered 200.
//!
//! Answers follow OTLP/HTTP: 200 with an `ExportLogsServiceResponse` (with
//! `partial_success` when records were refused); errors with a `google.rpc.Status`; both
//! in the request's encoding. 400 a body that does not decode (nothing stored); 401
//! missing or wrong token; 408 body too slow; 413 body, decompressed body or mapped
//! records over the limits; 415 an unknown `Content-Type` or `Content-Encoding` (answered
//! in JSON); 429 / 503 with `Retry-After: 1` when the inbox is full / not writable, which
//! OTLP exporters retry.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::codec::{self, Encoding};
use super::map;
use crate::input::admit::{InboxWriter, StoreError};
use crate::input::web::auth::Tokens;
use crate::input::web::body::{self, BodyError, BodyLimits};
use crate::input::LogLimiter;
use crate::metrics::InputMetrics;
use crate::render::{HOST_ATTR, SOURCE_TYPE_ATTR};
use logferry_shared::wire::BatchBuilder;

/// The OTLP/HTTP logs path.
pub const LOGS_PATH: &str = "/v1/logs";

/// What the handler needs.
#[derive(Debug)]
pub struct OtlpState {
    /// The input's name.
    pub name: String,
    /// `otlp+http` or `otlp+https`, for `source.path`.
    pub scheme: &'static str,
    /// Accepted tokens.
    pub tokens: Tokens,
    /// Body limits.
    pub limits: BodyLimits,
    /// Where records go.
    pub writer: InboxWriter,
    /// The input's metrics.
    pub metrics: InputMetrics,
    /// Rate limit for warnings about bad clients.
    pub log: LogLimiter,
    /// Permits to decode a request ([`crate::input::web::DECODING_AT_ONCE`]).
    pub decoding: tokio::sync::Semaphore,
}

/// Why a request was not stored.
enum Refusal {
    Body(BodyError),
    Decode(String),
    TooMany(usize),
    Store(StoreError),
}

/// The handler of [`LOGS_PATH`].
pub async fn post_logs(
    State(st): State<Arc<OtlpState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let encoding = Encoding::from_content_type(content_type);
    if !st.tokens.allows(&headers) {
        st.metrics.request("unauthorized");
        if st.log.allow() {
            tracing::warn!(input = %st.name, %peer, "OTLP request with a missing or wrong token");
        }
        return answer_error(
            encoding.unwrap_or(Encoding::Json),
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
        );
    }
    let Some(encoding) = encoding else {
        st.metrics.request("unsupported_media_type");
        return answer_error(
            Encoding::Json,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!(
                "Content-Type `{content_type}`: send {} or {}",
                codec::PROTOBUF,
                codec::JSON
            ),
        );
    };
    match receive_and_store(&st, peer, &headers, encoding, body).await {
        Ok(mapped) => {
            st.metrics.request(match mapped.rejected {
                0 => "accepted",
                _ => "partial",
            });
            if mapped.rejected > 0 {
                st.metrics.dropped("rejected", mapped.rejected);
                if st.log.allow() {
                    tracing::warn!(input = %st.name, %peer, rejected = mapped.rejected, error = mapped.first_error.as_deref().unwrap_or_default(), "refused some OTLP log records");
                }
            }
            let message = mapped
                .first_error
                .map(|e| format!("{} log records refused; the first: {e}", mapped.rejected));
            let body = codec::response(encoding, mapped.rejected, message.as_deref());
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, encoding.content_type())],
                body,
            )
                .into_response()
        }
        Err(refusal) => refuse(&st, peer, encoding, refusal),
    }
}

async fn receive_and_store(
    st: &Arc<OtlpState>,
    peer: SocketAddr,
    headers: &HeaderMap,
    encoding: Encoding,
    body: Body,
) -> Result<map::Mapped, Refusal> {
    let compression = body::encoding(headers).map_err(Refusal::Body)?;
    if let Some(full) = st.writer.inbox_full() {
        return Err(Refusal::Store(full));
    }
    let sent = body::receive(headers, body, &st.limits)
        .await
        .map_err(Refusal::Body)?;
    st.metrics.bytes.inc_by(sent.len() as u64);
    // The semaphore is never closed.
    let _permit = st
        .decoding
        .acquire()
        .await
        .map_err(|e| Refusal::Store(StoreError::Failed(format!("decoding permits: {e}"))))?;
    let state = st.clone();
    let stored = tokio::task::spawn_blocking(move || -> Result<map::Mapped, Refusal> {
        let st = state;
        let raw = body::decompress(compression, &sent, &st.limits).map_err(Refusal::Body)?;
        let request = codec::decode(encoding, &raw).map_err(Refusal::Decode)?;
        drop(raw);
        let now_ns = now_ns();
        let mut batch = st
            .writer
            .builder(map::earliest_observed_ms(&request, now_ns));
        let ip = peer.ip().to_canonical();
        let peer_host = ip.to_string();
        let path = match ip {
            std::net::IpAddr::V4(_) => format!("{}://{peer_host}/{}", st.scheme, st.name),
            std::net::IpAddr::V6(_) => format!("{}://[{peer_host}]/{}", st.scheme, st.name),
        };
        let mut into = IntoBatch {
            batch: &mut batch,
            path: &path,
            peer_host: &peer_host,
            max: st.writer.max_batch_bytes(),
        };
        let mapped = map::map_request(&request, now_ns, &mut into)?;
        drop(request);
        st.writer.store(batch).map_err(Refusal::Store)?;
        st.metrics
            .messages
            .inc_by(mapped.accepted + mapped.rejected);
        Ok(mapped)
    })
    .await;
    match stored {
        Ok(r) => r,
        Err(e) => Err(Refusal::Store(StoreError::Failed(format!(
            "decoder task failed: {e}"
        )))),
    }
}

/// Mapped records into the request's batch, within what one batch may hold.
struct IntoBatch<'a> {
    batch: &'a mut BatchBuilder,
    path: &'a str,
    peer_host: &'a str,
    max: usize,
}

impl map::Records for IntoBatch<'_> {
    type Error = Refusal;

    fn source(&mut self, spec: &map::SourceSpec) -> u32 {
        let mut attrs: Vec<(&str, &str)> = vec![(SOURCE_TYPE_ATTR, "otlp")];
        if !spec.attrs.iter().any(|(k, _)| *k == HOST_ATTR) {
            attrs.push((HOST_ATTR, self.peer_host));
        }
        attrs.extend(spec.attrs.iter().map(|(k, v)| (*k, v.as_str())));
        self.batch.add_source(self.path, &attrs)
    }

    fn record(&mut self, source: u32, observed_ms: u64, line: &[u8]) -> Result<(), Refusal> {
        self.batch.push(source, observed_ms, 0, line);
        match self.batch.raw_len() > self.max {
            true => Err(Refusal::TooMany(self.max)),
            false => Ok(()),
        }
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn answer_error(encoding: Encoding, status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, encoding.content_type())],
        codec::status(encoding, status, message),
    )
        .into_response()
}

fn refuse(st: &OtlpState, peer: SocketAddr, encoding: Encoding, refusal: Refusal) -> Response {
    let (status, result, message, retry) = match refusal {
        Refusal::Body(e) => (e.status(), e.result(), e.to_string(), None),
        Refusal::Decode(e) => (StatusCode::BAD_REQUEST, "bad_request", e, None),
        Refusal::TooMany(max) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the log records take more than {max} bytes stored; send fewer per request"),
            None,
        ),
        Refusal::Store(e) => (e.status(), e.result(), e.to_string(), e.retry_after()),
    };
    st.metrics.request(result);
    if status != StatusCode::TOO_MANY_REQUESTS && st.log.allow() {
        tracing::warn!(input = %st.name, %peer, %status, error = %message, "refused an OTLP request");
    }
    let mut r = answer_error(encoding, status, &message);
    if let Some(secs) = retry {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static(secs));
    }
    r
}
