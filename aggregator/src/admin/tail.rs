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
//! Filters: those of [`super::query`] (`q`, `level`, `source`, `host`, `namespace`), read
//! by the same code as `/api/logs` reads them and meaning the same.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, OwnedSemaphorePermit};

use super::background::RunError;
use super::query::{EventFilters, EventQuery};
use super::AdminState;
use crate::http::error;
use crate::search::{LevelSet, TextFilter};

/// Frames the tail channel holds for its slowest listener.
pub const TAIL_CAPACITY: usize = 64;
/// Most tail streams at once.
pub const MAX_TAILS: usize = 32;

/// The filters of a tail ([`EventFilters`]), ready to run on JSON lines.
#[derive(Debug)]
pub struct TailFilter {
    text: Option<TextFilter>,
    levels: LevelSet,
    source: Option<String>,
    host: Option<String>,
    namespace: Option<String>,
    /// Lower-cased copy of the line for the text filter.
    scratch: Vec<u8>,
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
    /// The filter for checked filters.
    pub fn new(f: EventFilters) -> TailFilter {
        TailFilter {
            text: f.text_filter(),
            levels: f.levels,
            source: f.source,
            host: f.host,
            namespace: f.namespace,
            scratch: Vec::new(),
        }
    }

    /// True when the JSON line passes every filter.
    pub fn matches(&mut self, line: &[u8]) -> bool {
        if let Some(t) = &self.text {
            if !t.matches(line, &mut self.scratch) {
                return false;
            }
        }
        if self.levels == LevelSet::ALL
            && self.source.is_none()
            && self.host.is_none()
            && self.namespace.is_none()
        {
            return true;
        }
        let Ok(v) = serde_json::from_slice::<LineView<'_>>(line) else {
            return false;
        };
        if self.levels != LevelSet::ALL {
            let level = v.level.as_deref().and_then(crate::parse::level::from_word);
            if !self.levels.contains(level) {
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

/// How often a quiet stream sends a comment, so proxies keep the connection open.
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// The Server-Sent Events of the lines of `frame` that pass `filter`: one `data:` message
/// per line, all in one buffer (one write per frame, however many lines match). Lines
/// are JSON from the renderer, so they hold no newline; invalid UTF-8 is replaced.
pub fn encode_matches(filter: &mut TailFilter, frame: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in frame.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        if filter.matches(line) {
            out.extend_from_slice(b"data: ");
            match std::str::from_utf8(line) {
                Ok(_) => out.extend_from_slice(line),
                Err(_) => out.extend_from_slice(String::from_utf8_lossy(line).as_bytes()),
            }
            out.extend_from_slice(b"\n\n");
        }
    }
    out
}

struct Stream {
    rx: broadcast::Receiver<Arc<Vec<u8>>>,
    pool: Arc<super::background::Background>,
    /// Shared with the job filtering a frame on the tail threads; the stream waits for
    /// each job, so the lock is never contended.
    filter: Arc<std::sync::Mutex<TailFilter>>,
    shutdown: logferry_shared::runtime::Shutdown,
    keep_alive: tokio::time::Interval,
    _permit: OwnedSemaphorePermit,
}

/// `GET /api/tail`.
///
/// Each frame is filtered and encoded on the tail threads ([`super::background`], lower
/// CPU priority), not on the threads that serve requests: a tail reads every line the
/// pipeline keeps, and neither ingest nor the pipeline must wait for it. When those
/// threads have more frames than they can queue, this tail skips the frame and reports it
/// lagged, as when it falls behind the channel.
pub async fn tail(
    State(st): State<AdminState>,
    q: Result<Query<EventQuery>, QueryRejection>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad query", e.body_text()),
    };
    let filter = match q.into_tail() {
        Ok(f) => TailFilter::new(f),
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
    let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
    keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    keep_alive.reset();
    let state = Stream {
        rx: tx.subscribe(),
        pool: st.tail_filters.clone(),
        filter: Arc::new(std::sync::Mutex::new(filter)),
        shutdown: st.shutdown.clone(),
        keep_alive,
        _permit: permit,
    };
    let chunks = futures_util::stream::unfold(state, |mut s| async move {
        loop {
            let received = tokio::select! {
                r = s.rx.recv() => r,
                _ = s.keep_alive.tick() => {
                    return Some((Ok::<Bytes, Infallible>(Bytes::from_static(b":\n\n")), s));
                }
                // The stream ends at shutdown, so the admin listener can drain.
                () = s.shutdown.wait() => return None,
            };
            match received {
                Ok(frame) => {
                    let filter = s.filter.clone();
                    let filtered = s
                        .pool
                        .run(move || {
                            let mut f = filter.lock().unwrap_or_else(|e| e.into_inner());
                            encode_matches(&mut f, &frame)
                        })
                        .await;
                    match filtered {
                        Ok(out) if out.is_empty() => {}
                        Ok(out) => {
                            s.keep_alive.reset();
                            return Some((Ok(Bytes::from(out)), s));
                        }
                        Err(RunError::Busy) => {
                            let msg = Bytes::from_static(b"event: lagged\ndata: 1\n\n");
                            return Some((Ok(msg), s));
                        }
                        // A panic while filtering ends this stream only.
                        Err(RunError::Failed) => return None,
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    let msg = format!("event: lagged\ndata: {n}\n\n");
                    return Some((Ok(Bytes::from(msg)), s));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(chunks),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(q: &str) -> TailFilter {
        let uri: axum::http::Uri = format!("/api/tail?{q}").parse().unwrap();
        let Query(q) = Query::<EventQuery>::try_from_uri(&uri).unwrap();
        TailFilter::new(q.into_tail().unwrap())
    }

    /// A line passes a tail's filters exactly when the search store would find it.
    #[test]
    fn lines_match_as_search_matches_them() {
        let line = br#"{"level":"warn","message":"DB \"timeout\" on shard","host":"h1","source":{"type":"file","path":"/var/log/pods/shop_a/c/0.log"},"k8s":{"namespace":"shop"}}"#;
        let no_level = br#"{"message":"db \"timeout\"","host":"h1"}"#;
        for (q, hit, hit_no_level) in [
            ("", true, true),
            ("q=db+%22TIMEOUT%22", true, true),
            ("q=timeout%22+on", true, false),
            ("q=db+timeout", false, false),
            ("level=warn", true, false),
            ("level=error", false, false),
            ("level=trace&host=h1", true, false),
            ("host=h1", true, true),
            ("host=h", false, false),
            ("source=/var/log/pods/shop_", true, false),
            ("source=/var/log/pods/web_", false, false),
            ("namespace=shop&q=shard", true, false),
            ("namespace=sho", false, false),
        ] {
            let mut f = filter(q);
            assert_eq!(f.matches(line), hit, "{q}");
            assert_eq!(f.matches(no_level), hit_no_level, "{q} (no level)");
        }
        assert!(!filter("level=info").matches(b"not json"));
        assert!(filter("q=NOT").matches(b"not json"));
    }

    #[test]
    fn a_frame_becomes_one_buffer_of_messages() {
        let frame = b"{\"level\":\"error\",\"message\":\"a\"}\n{\"level\":\"info\",\"message\":\"b\"}\n\n{\"level\":\"fatal\",\"message\":\"c\xff\"}\n";
        let out = encode_matches(&mut filter("level=error"), frame);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "data: {\"level\":\"error\",\"message\":\"a\"}\n\n\
             data: {\"level\":\"fatal\",\"message\":\"c\u{fffd}\"}\n\n"
        );
        assert!(encode_matches(&mut filter("q=zzz"), frame).is_empty());
    }
}
