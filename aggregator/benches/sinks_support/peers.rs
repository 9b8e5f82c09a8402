//! The sink benchmark's peers on 127.0.0.1: an HTTP collector (axum; gunzips bodies and
//! counts lines), a CloudWatch Logs JSON-protocol stub that answers every call OK and
//! counts `PutLogEvents` events, and a stalled collector that accepts connections and
//! reads requests but never answers.

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::io::AsyncReadExt;

/// Events and requests a peer took.
#[derive(Debug, Clone, Default)]
pub struct Counter {
    events: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
}

impl Counter {
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Acquire)
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Acquire)
    }

    fn took(&self, events: u64) {
        self.requests.fetch_add(1, Ordering::AcqRel);
        self.events.fetch_add(events, Ordering::AcqRel);
    }
}

/// A running peer; stops when dropped.
pub struct Peer {
    addr: SocketAddr,
    path: &'static str,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Peer {
    /// An `http` collector or a `cloudwatch_logs` stub counting into `counter`.
    pub async fn start(kind: &str, counter: Counter) -> Peer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let (app, path) = match kind {
            "http" => (Router::new().fallback(collect), "/ingest"),
            _ => (Router::new().fallback(cloudwatch), ""),
        };
        let app = app
            .layer(DefaultBodyLimit::max(64 << 20))
            .with_state(counter);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Peer { addr, path, task }
    }

    /// Accepts connections and reads whatever comes, never answering.
    pub async fn stalled() -> Peer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 << 10];
                    while matches!(conn.read(&mut buf).await, Ok(n) if n > 0) {}
                });
            }
        });
        Peer {
            addr,
            path: "/ingest",
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, self.path)
    }
}

async fn collect(State(counter): State<Counter>, headers: HeaderMap, body: Bytes) -> Response {
    let gzip = headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"gzip");
    let lines = if gzip {
        let mut plain = Vec::with_capacity(body.len() * 8);
        if flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut plain)
            .is_err()
        {
            return StatusCode::BAD_REQUEST.into_response();
        }
        memchr::memchr_iter(b'\n', &plain).count()
    } else {
        memchr::memchr_iter(b'\n', &body).count()
    };
    counter.took(lines as u64);
    StatusCode::OK.into_response()
}

#[derive(serde::Deserialize)]
struct PutLogEvents {
    #[serde(rename = "logEvents")]
    log_events: Vec<serde::de::IgnoredAny>,
}

async fn cloudwatch(State(counter): State<Counter>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let answer = if target == "Logs_20140328.PutLogEvents" {
        match serde_json::from_slice::<PutLogEvents>(&body) {
            Ok(put) => {
                counter.took(put.log_events.len() as u64);
                r#"{"nextSequenceToken":"1"}"#
            }
            Err(_) => return StatusCode::BAD_REQUEST.into_response(),
        }
    } else {
        // CreateLogGroup, CreateLogStream, PutRetentionPolicy.
        "{}"
    };
    (
        StatusCode::OK,
        [("content-type", "application/x-amz-json-1.1")],
        answer,
    )
        .into_response()
}

/// Lines in a file sink: the file and its rotated files `PATH.N`.
pub fn count_lines(path: &Path) -> u64 {
    let lines =
        |p: &Path| std::fs::read(p).map_or(0, |b| memchr::memchr_iter(b'\n', &b).count() as u64);
    let prefix = format!(
        "{}.",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
    );
    let rotated: u64 = std::fs::read_dir(path.parent().unwrap_or(Path::new(".")))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .map(|e| lines(&e.path()))
        .sum();
    lines(path) + rotated
}
