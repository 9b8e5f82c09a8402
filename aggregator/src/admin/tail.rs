//! `GET /api/tail`: a live stream of the events the pipeline keeps, as Server-Sent Events
//! (`data:` is one event's JSON line), filtered like `/api/logs`.
//!
//! The pipeline publishes each frame's lines on a bounded broadcast channel
//! ([`crate::pipeline::TailSender`], [`TAIL_CAPACITY`] frames) only while someone listens,
//! and never waits: a client that falls behind misses frames and is told so by an
//! `event: lagged` message whose data is the number of frames it missed. At most
//! [`MAX_TAILS`] streams run at once (503 beyond); a comment is sent every 15 s so proxies
//! keep the connection open. Streams end when the aggregator shuts down.
//!
//! Filters (all optional, combined with AND): `q` (text the line contains, ignoring ASCII
//! case), `level` (that level or above), `source` (a prefix of `source.path`), `host`,
//! `namespace` (exact).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use logferry_shared::event::Level;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, OwnedSemaphorePermit};

use super::AdminState;
use crate::http::error;

/// Frames the tail channel holds for its slowest listener.
pub const TAIL_CAPACITY: usize = 64;
/// Most tail streams at once.
pub const MAX_TAILS: usize = 32;

/// The query string of `/api/tail`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailQuery {
    /// Text the line contains (ASCII case ignored).
    pub q: Option<String>,
    /// Minimum level.
    pub level: Option<String>,
    /// Prefix of the source path.
    pub source: Option<String>,
    /// Host, exactly.
    pub host: Option<String>,
    /// Kubernetes namespace, exactly.
    pub namespace: Option<String>,
}

/// A compiled [`TailQuery`].
#[derive(Debug, Default)]
pub struct TailFilter {
    text: Option<Vec<u8>>,
    level: Option<Level>,
    source: Option<String>,
    host: Option<String>,
    namespace: Option<String>,
}

/// What the filter reads of a line.
#[derive(Deserialize)]
struct LineView<'a> {
    #[serde(default, borrow)]
    level: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    host: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    source: Option<SourceView<'a>>,
    #[serde(default, borrow)]
    k8s: Option<K8sView<'a>>,
}

#[derive(Deserialize)]
struct SourceView<'a> {
    #[serde(default, borrow)]
    path: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct K8sView<'a> {
    #[serde(default, borrow)]
    namespace: Option<std::borrow::Cow<'a, str>>,
}

impl TailFilter {
    /// Compiles the query; an unknown level is an error naming it.
    pub fn new(q: TailQuery) -> Result<TailFilter, String> {
        let level = match q.level.as_deref().filter(|l| !l.is_empty()) {
            None => None,
            Some(l) => Some(
                crate::parse::level::from_word(l)
                    .ok_or_else(|| format!("level: unknown level `{l}`"))?,
            ),
        };
        Ok(TailFilter {
            text: q
                .q
                .filter(|t| !t.is_empty())
                .map(|t| t.to_ascii_lowercase().into_bytes()),
            level,
            source: q.source.filter(|s| !s.is_empty()),
            host: q.host.filter(|s| !s.is_empty()),
            namespace: q.namespace.filter(|s| !s.is_empty()),
        })
    }

    /// True when the JSON line passes every filter.
    pub fn matches(&self, line: &[u8]) -> bool {
        if let Some(t) = &self.text {
            if memchr::memmem::find(&line.to_ascii_lowercase(), t).is_none() {
                return false;
            }
        }
        if self.level.is_none()
            && self.source.is_none()
            && self.host.is_none()
            && self.namespace.is_none()
        {
            return true;
        }
        let Ok(v) = serde_json::from_slice::<LineView<'_>>(line) else {
            return false;
        };
        if let Some(min) = self.level {
            let level = v.level.as_deref().and_then(crate::parse::level::from_word);
            if level.is_none_or(|l| l < min) {
                return false;
            }
        }
        if let Some(prefix) = &self.source {
            let path = v.source.as_ref().and_then(|s| s.path.as_deref());
            if !path.is_some_and(|p| p.starts_with(prefix.as_str())) {
                return false;
            }
        }
        if let Some(h) = &self.host {
            if v.host.as_deref() != Some(h.as_str()) {
                return false;
            }
        }
        if let Some(ns) = &self.namespace {
            if v.k8s.as_ref().and_then(|k| k.namespace.as_deref()) != Some(ns.as_str()) {
                return false;
            }
        }
        true
    }
}

struct Stream {
    rx: broadcast::Receiver<Arc<Vec<u8>>>,
    filter: TailFilter,
    pending: VecDeque<String>,
    shutdown: logferry_shared::runtime::Shutdown,
    _permit: OwnedSemaphorePermit,
}

/// `GET /api/tail`.
pub async fn tail(
    State(st): State<AdminState>,
    q: Result<Query<TailQuery>, QueryRejection>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad query", e.body_text()),
    };
    let filter = match TailFilter::new(q) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad query", e),
    };
    let Some(tx) = st.tail.clone() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "tail unavailable",
            "the pipeline does not publish lines",
        );
    };
    let Ok(permit) = st.tails.clone().try_acquire_owned() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many tails",
            format!("at most {MAX_TAILS} live tails at once"),
        );
    };
    let state = Stream {
        rx: tx.subscribe(),
        filter,
        pending: VecDeque::new(),
        shutdown: st.shutdown.clone(),
        _permit: permit,
    };
    let events = futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(line) = s.pending.pop_front() {
                return Some((Ok::<Event, Infallible>(Event::default().data(line)), s));
            }
            let received = tokio::select! {
                r = s.rx.recv() => r,
                // The stream ends at shutdown, so the admin listener can drain.
                () = s.shutdown.wait() => return None,
            };
            match received {
                Ok(frame) => {
                    for line in frame.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                        if s.filter.matches(line) {
                            s.pending
                                .push_back(String::from_utf8_lossy(line).into_owned());
                        }
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    let ev = Event::default().event("lagged").data(n.to_string());
                    return Some((Ok(ev), s));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
        .into_response()
}
