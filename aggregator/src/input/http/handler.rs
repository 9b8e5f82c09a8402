//! `POST /v1/logs` of the http input: token, content type and encoding checks, the body
//! read under its limits, decoded into records, stored in the inbox as one batch, and
//! only then answered 200.
//!
//! Answers (errors are `{"error": "...", "detail": ...}`):
//! - 200 `{"status":"accepted","events":N}`: the N records are durable in the inbox.
//! - 400: the body is not what its `Content-Type` says; `detail` names the first bad
//!   record: `{"record":R,"line":L,"column":C,"reason":"..."}`. Nothing was stored.
//! - 401 missing or wrong token; 404 other paths; 405 other methods.
//! - 408 body not received within `body_timeout`.
//! - 413 body over `max_body_bytes`, decompressed body over `max_decompressed_bytes`, or
//!   records over what one stored batch holds.
//! - 415 a `Content-Type` or `Content-Encoding` this input does not read.
//! - 429 (`Retry-After: 1`) the inbox is full; 503 (`Retry-After: 1`) it cannot be
//!   written; 500 a bug.
//!
//! Every answer is counted in `logferry_input_requests_total{input,result}`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::decode::{self, BadRecord, BodyKind, Stop, NDJSON_TYPES};
use crate::http::error;
use crate::input::admit::{InboxWriter, StoreError};
use crate::input::feed::now_ms;
use crate::input::web::auth::Tokens;
use crate::input::web::body::{self, BodyError, BodyLimits};
use crate::input::LogLimiter;
use crate::metrics::InputMetrics;
use crate::render::{HOST_ATTR, SOURCE_TYPE_ATTR};

/// The path clients POST records to.
pub const LOGS_PATH: &str = "/v1/logs";

/// What the handler needs.
#[derive(Debug)]
pub struct HttpState {
    /// The input's name.
    pub name: String,
    /// `http` or `https`, for `source.path`.
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
    Record(BadRecord),
    TooMany(usize),
    Store(StoreError),
}

/// The handler of [`LOGS_PATH`].
pub async fn post_logs(
    State(st): State<Arc<HttpState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !st.tokens.allows(&headers) {
        st.metrics.request("unauthorized");
        if st.log.allow() {
            tracing::warn!(input = %st.name, %peer, "request with a missing or wrong token");
        }
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token",
        );
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(kind) = BodyKind::from_content_type(content_type) else {
        st.metrics.request("unsupported_media_type");
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported content type",
            format!(
                "Content-Type `{content_type}`: send application/json (an object or an array of objects) or one of {} (one object per line)",
                NDJSON_TYPES.join(", ")
            ),
        );
    };
    let result = receive_and_store(&st, peer, &headers, kind, body).await;
    match result {
        Ok(events) => {
            st.metrics.request("accepted");
            Json(json!({"status": "accepted", "events": events})).into_response()
        }
        Err(refusal) => refuse(&st, peer, refusal),
    }
}

async fn receive_and_store(
    st: &Arc<HttpState>,
    peer: SocketAddr,
    headers: &HeaderMap,
    kind: BodyKind,
    body: Body,
) -> Result<usize, Refusal> {
    let codec = body::encoding(headers).map_err(Refusal::Body)?;
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
    let stored = tokio::task::spawn_blocking(move || -> Result<usize, Refusal> {
        let st = state;
        let text = body::decompress(codec, &sent, &st.limits).map_err(Refusal::Body)?;
        let observed = now_ms();
        let mut batch = st.writer.builder(observed);
        let ip = peer.ip().to_canonical();
        let host = ip.to_string();
        let path = match ip {
            std::net::IpAddr::V4(_) => format!("{}://{host}/{}", st.scheme, st.name),
            std::net::IpAddr::V6(_) => format!("{}://[{host}]/{}", st.scheme, st.name),
        };
        let source = batch.add_source(&path, &[(SOURCE_TYPE_ATTR, "http"), (HOST_ATTR, &host)]);
        let max = st.writer.max_batch_bytes();
        let n = decode::records(kind, &text, |line| {
            batch.push(source, observed, 0, line);
            match batch.raw_len() > max {
                true => Err(Refusal::TooMany(max)),
                false => Ok(()),
            }
        })
        .map_err(|stop| match stop {
            Stop::Bad(bad) => Refusal::Record(bad),
            Stop::Emit(refusal) => refusal,
        })?;
        st.writer.store(batch).map_err(Refusal::Store)?;
        st.metrics.messages.inc_by(n as u64);
        Ok(n)
    })
    .await;
    match stored {
        Ok(r) => r,
        Err(e) => Err(Refusal::Store(StoreError::Failed(format!(
            "decoder task failed: {e}"
        )))),
    }
}

fn refuse(st: &HttpState, peer: SocketAddr, refusal: Refusal) -> Response {
    match refusal {
        Refusal::Body(e) => {
            st.metrics.request(e.result());
            if st.log.allow() {
                tracing::warn!(input = %st.name, %peer, error = %e, "refused a request");
            }
            error(e.status(), "bad request body", e.to_string())
        }
        Refusal::Record(bad) => {
            st.metrics.request("bad_request");
            if st.log.allow() {
                tracing::warn!(input = %st.name, %peer, error = %bad, "refused a request with a bad record");
            }
            error(
                StatusCode::BAD_REQUEST,
                "bad record",
                json!({
                    "record": bad.record,
                    "line": bad.line,
                    "column": bad.column,
                    "reason": bad.reason,
                    "message": bad.to_string(),
                }),
            )
        }
        Refusal::TooMany(max) => {
            st.metrics.request("too_large");
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too large",
                format!("the records take more than {max} bytes stored; send fewer per request"),
            )
        }
        Refusal::Store(e) => {
            st.metrics.request(e.result());
            let mut r = error(e.status(), "not stored", e.to_string());
            if let Some(secs) = e.retry_after() {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static(secs));
            }
            r
        }
    }
}
