//! The agents' endpoint: `POST /v1/batch` with one wire frame as the body.
//!
//! Answers: 200 `{"status":"accepted","events":N}` once the batch is durable in the
//! inbox, 200 `{"status":"duplicate"}` for a batch accepted before, 401 for a missing or
//! wrong token, 400 for a malformed frame, 408 for a body not received within 60 s, 413
//! for a body or decompressed batch over the limits, 415 for an unknown codec, 429 (with
//! `Retry-After`) when the inbox is full, 503 (with `Retry-After`) when it cannot be
//! written. Every refusal is counted and the process carries on.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use logferry_shared::wire::{self, DecodeLimits, RefusalClass, WireError};
use subtle::ConstantTimeEq;

use crate::http::error;
use crate::inbox::{Admit, Decoded, Inbox, InboxError};
use crate::metrics::Metrics;
use crate::pipeline::Wake;

/// The path agents POST batches to.
pub const BATCH_PATH: &str = "/v1/batch";
/// How long a client may take to send a request body.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// What the ingest handler needs.
#[derive(Debug)]
pub struct IngestState {
    /// Accepted bearer tokens; empty means certificates alone authenticate (mTLS).
    pub tokens: Vec<Vec<u8>>,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Frame decoder limits.
    pub limits: DecodeLimits,
    /// Where accepted batches are stored.
    pub inbox: Arc<Inbox>,
    /// Wakes the pipeline after a batch is stored.
    pub wake: Arc<Wake>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The agents seen.
    pub agents: Arc<crate::agents::AgentRegistry>,
}

impl IngestState {
    /// Constant-time check of the bearer token against every accepted token.
    fn authorized(&self, headers: &HeaderMap) -> bool {
        if self.tokens.is_empty() {
            return true;
        }
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            .unwrap_or_default();
        // Compare against every token without stopping early.
        let mut ok = subtle::Choice::from(0);
        for t in &self.tokens {
            ok |= t.as_slice().ct_eq(presented);
        }
        bool::from(ok) && !presented.is_empty()
    }
}

/// The ingest router.
pub fn router(state: Arc<IngestState>) -> Router {
    Router::new()
        .route(BATCH_PATH, post(post_batch))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "not found",
                format!("POST {BATCH_PATH}"),
            )
        })
        .with_state(state)
}

async fn post_batch(
    State(st): State<Arc<IngestState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !st.authorized(&headers) {
        st.metrics.auth_failures.inc();
        st.metrics.batch("rejected");
        tracing::warn!("ingest request with a missing or wrong token");
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token",
        );
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > st.max_body_bytes) {
        st.metrics.batch("rejected");
        return too_large(st.max_body_bytes);
    }
    let collected = tokio::time::timeout(
        BODY_TIMEOUT,
        Limited::new(body, st.max_body_bytes).collect(),
    )
    .await;
    let bytes = match collected {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            st.metrics.batch("rejected");
            return too_large(st.max_body_bytes);
        }
        Ok(Err(e)) => return error(StatusCode::BAD_REQUEST, "body read failed", e.to_string()),
        Err(_) => {
            st.metrics.batch("rejected");
            return error(
                StatusCode::REQUEST_TIMEOUT,
                "request timeout",
                format!("body not received within {}s", BODY_TIMEOUT.as_secs()),
            );
        }
    };
    st.metrics.ingest_bytes.inc_by(bytes.len() as u64);
    let limits = st.limits;
    let inbox = st.inbox.clone();
    // Decoding (decompression) and the inbox's fsync are blocking work: off the reactor.
    // The decompressed body goes to the inbox with the frame, so the pipeline does not
    // decompress it again.
    let request_bytes = bytes.len() as u64;
    let version = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let agents = st.agents.clone();
    let admitted = tokio::task::spawn_blocking(move || -> Result<(Admit, u32), Refusal> {
        let frame = wire::decode_frame(&bytes, &limits).map_err(Refusal::Wire)?;
        let batch = frame.batch().map_err(Refusal::Wire)?;
        let events = batch.records.len() as u32;
        let newest_ms = batch
            .records
            .iter()
            .map(|r| r.observed_ms)
            .max()
            .unwrap_or(0);
        let host = batch.host.to_owned();
        drop(batch);
        let h = frame.header;
        let decoded = Decoded {
            record_count: h.record_count,
            body: frame.body,
        };
        let admit = inbox
            .admit_decoded(&h.agent_id, &h.stream, h.seq, &bytes, Some(decoded))
            .map_err(Refusal::Storage)?;
        if matches!(admit, Admit::Accepted | Admit::Duplicate) {
            let now_ms = logferry_shared::event::Timestamp::now().as_millis().max(0) as u64;
            agents.record(
                &crate::agents::BatchSeen {
                    agent_id: &h.agent_id,
                    host: &host,
                    version: &version,
                    seq: h.seq,
                    events: u64::from(events),
                    bytes: request_bytes,
                    newest_ms,
                    duplicate: admit == Admit::Duplicate,
                },
                now_ms,
            );
        }
        Ok((admit, events))
    })
    .await;
    match admitted {
        Ok(Ok((Admit::Accepted, n))) => {
            st.wake.notify();
            st.metrics.batch("accepted");
            st.metrics.ingest_events.inc_by(u64::from(n));
            st.metrics.inbox_bytes.set(st.inbox.bytes() as i64);
            Json(serde_json::json!({"status": "accepted", "events": n})).into_response()
        }
        Ok(Ok((Admit::Duplicate, _))) => {
            st.metrics.batch("duplicate");
            Json(serde_json::json!({"status": "duplicate"})).into_response()
        }
        Ok(Ok((Admit::Full, _))) => {
            st.metrics.batch("throttled");
            let detail = format!(
                "the inbox holds {} of {} bytes; retry later",
                st.inbox.bytes(),
                st.inbox.max_bytes()
            );
            with_retry_after(error(StatusCode::TOO_MANY_REQUESTS, "inbox full", detail))
        }
        Ok(Err(Refusal::Wire(e))) => {
            st.metrics.batch("rejected");
            tracing::warn!(error = %e, "refused a malformed batch");
            let (status, what) = match e.status_class() {
                RefusalClass::BadRequest => (StatusCode::BAD_REQUEST, "bad frame"),
                RefusalClass::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too large"),
                RefusalClass::UnsupportedMedia => {
                    (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unknown codec")
                }
            };
            error(status, what, e.to_string())
        }
        Ok(Err(Refusal::Storage(e))) => {
            st.metrics.batch("failed");
            tracing::error!(error = %e, "cannot store a batch in the inbox");
            with_retry_after(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "inbox unavailable",
                e.to_string(),
            ))
        }
        Err(e) => {
            st.metrics.batch("failed");
            tracing::error!(error = %e, "batch decoder task failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
                "decoder task failed",
            )
        }
    }
}

/// Why a batch was not admitted.
enum Refusal {
    Wire(WireError),
    Storage(InboxError),
}

fn with_retry_after(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

fn too_large(limit: usize) -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too large",
        format!("request body exceeds {limit} bytes"),
    )
}
