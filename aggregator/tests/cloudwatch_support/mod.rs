//! Peers for the CloudWatch Logs sink tests: moto's server mode as a child process, and a
//! stub of the CloudWatch Logs JSON protocol (`X-Amz-Target: Logs_20140328.*`) that
//! answers from a script and records the events it accepted.

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

/// A free port on 127.0.0.1 (free when this returns).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A running `moto_server`, killed on drop.
pub struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    /// Starts moto on a free port and waits until it answers HTTP. The binary is
    /// `$LOGFERRY_MOTO_SERVER` or `~/.cache/logferry-ci/moto/bin/moto_server` (installed
    /// by `.ci/run`); the test fails if neither exists.
    pub fn start() -> Moto {
        let path = match std::env::var_os("LOGFERRY_MOTO_SERVER") {
            Some(p) => PathBuf::from(p),
            None => {
                let home = std::env::var_os("HOME").expect("HOME is not set");
                PathBuf::from(home).join(".cache/logferry-ci/moto/bin/moto_server")
            }
        };
        assert!(
            path.exists(),
            "moto_server not found at {} (set LOGFERRY_MOTO_SERVER, or run .ci/run, which installs \
             it with: python3 -m venv ~/.cache/logferry-ci/moto && \
             ~/.cache/logferry-ci/moto/bin/pip install 'moto[server]')",
            path.display()
        );
        let port = free_port();
        let child = Command::new(&path)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", path.display()));
        let mut moto = Moto { child, port };
        moto.wait_ready(Duration::from_secs(60));
        moto
    }

    /// Base URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn wait_ready(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("moto_server exited early: {status}");
            }
            if let Ok(mut conn) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let request = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
                let mut answer = Vec::new();
                if conn.write_all(request.as_bytes()).is_ok()
                    && conn.read_to_end(&mut answer).is_ok()
                    && answer.starts_with(b"HTTP/1.")
                {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CloudWatch Logs client for checking what a peer holds (dummy credentials).
pub async fn test_client(endpoint: &str) -> aws_sdk_cloudwatchlogs::Client {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let config = aws_sdk_cloudwatchlogs::Config::builder()
        .behavior_version(aws_sdk_cloudwatchlogs::config::BehaviorVersion::latest())
        .region(aws_sdk_cloudwatchlogs::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_cloudwatchlogs::config::Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        ))
        .http_client(http)
        .build();
    aws_sdk_cloudwatchlogs::Client::from_conf(config)
}

/// How the stub answers one `PutLogEvents`.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Accept every event.
    Ok,
    /// HTTP 400 `ThrottlingException`.
    Throttle,
    /// HTTP 503 `ServiceUnavailableException`.
    Unavailable,
    /// This status with an empty JSON body.
    Status(u16),
    /// HTTP 400 `AccessDeniedException`.
    AccessDenied,
    /// HTTP 400 `ResourceNotFoundException`.
    NotFound,
    /// Accept, except the events `rejectedLogEventsInfo` names.
    Rejected {
        too_old_end: i32,
        expired_end: i32,
        too_new_start: i32,
    },
    /// Never answer.
    Hang,
}

/// One event the stub accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub group: String,
    pub stream: String,
    pub timestamp: i64,
    pub message: String,
}

#[derive(Default)]
struct StubState {
    script: VecDeque<Reply>,
    accepted: Vec<Accepted>,
    calls: HashMap<String, usize>,
    max_request_bytes: usize,
    /// Fixed answers for operations other than `PutLogEvents` (default: success).
    others: HashMap<String, Reply>,
    /// `PutLogEvents` requests with an event holding this text get
    /// `InvalidParameterException`.
    invalid_containing: Option<String>,
}

/// The stub server; stops on drop.
pub struct Stub {
    addr: SocketAddr,
    state: Arc<Mutex<StubState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Stub {
    /// Serves on a free port; `PutLogEvents` answers follow `script`, then `Ok`.
    pub async fn start(script: Vec<Reply>) -> Stub {
        let state = Arc::new(Mutex::new(StubState {
            script: script.into(),
            ..Default::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(handle).with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Stub { addr, state, task }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Events accepted so far, in the order received.
    pub fn accepted(&self) -> Vec<Accepted> {
        self.state.lock().unwrap().accepted.clone()
    }

    /// Answers every later call of `operation` (not `PutLogEvents`) with `reply`.
    pub fn answer(&self, operation: &str, reply: Reply) {
        self.state
            .lock()
            .unwrap()
            .others
            .insert(operation.to_owned(), reply);
    }

    /// Answers every later `PutLogEvents` that has an event holding `text` with HTTP 400
    /// `InvalidParameterException`, as CloudWatch does for a request it will not take.
    pub fn invalid_containing(&self, text: &str) {
        self.state.lock().unwrap().invalid_containing = Some(text.to_owned());
    }

    /// How many calls of `operation` arrived.
    pub fn calls(&self, operation: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .calls
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// The largest `PutLogEvents` seen, counted as CloudWatch does (message bytes + 26
    /// per event).
    pub fn max_request_bytes(&self) -> usize {
        self.state.lock().unwrap().max_request_bytes
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn error(status: u16, kind: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap();
    let body = json!({"__type": kind, "message": message}).to_string();
    (
        status,
        [("content-type", "application/x-amz-json-1.1")],
        body,
    )
        .into_response()
}

fn ok(body: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/x-amz-json-1.1")],
        body.to_string(),
    )
        .into_response()
}

async fn handle(
    State(state): State<Arc<Mutex<StubState>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(operation) = target.strip_prefix("Logs_20140328.") else {
        return error(400, "UnknownOperationException", target);
    };
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(400, "SerializationException", &e.to_string()),
    };
    let reply = {
        let mut st = state.lock().unwrap();
        *st.calls.entry(operation.to_owned()).or_default() += 1;
        if operation != "PutLogEvents" {
            // CreateLogGroup, CreateLogStream, PutRetentionPolicy...
            return match st.others.get(operation) {
                Some(Reply::AccessDenied) => error(400, "AccessDeniedException", "not allowed"),
                Some(Reply::NotFound) => error(400, "ResourceNotFoundException", "no group"),
                _ => ok(json!({})),
            };
        }
        if let Some(text) = &st.invalid_containing {
            let events = request["logEvents"].as_array();
            let bad = events.into_iter().flatten().any(|e| {
                e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(text.as_str()))
            });
            if bad {
                return error(400, "InvalidParameterException", "Log event is malformed");
            }
        }
        st.script.pop_front().unwrap_or(Reply::Ok)
    };
    let (too_old_end, expired_end, too_new_start) = match reply {
        Reply::Ok => (0, 0, i32::MAX),
        Reply::Rejected {
            too_old_end,
            expired_end,
            too_new_start,
        } => (too_old_end, expired_end, too_new_start),
        Reply::Throttle => return error(400, "ThrottlingException", "Rate exceeded"),
        Reply::Unavailable => return error(503, "ServiceUnavailableException", "down"),
        Reply::Status(code) => return (StatusCode::from_u16(code).unwrap(), "{}").into_response(),
        Reply::AccessDenied => return error(400, "AccessDeniedException", "not allowed"),
        Reply::NotFound => return error(400, "ResourceNotFoundException", "no group"),
        Reply::Hang => std::future::pending().await,
    };
    let group = request["logGroupName"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let stream = request["logStreamName"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let events = request["logEvents"].as_array().cloned().unwrap_or_default();
    let mut st = state.lock().unwrap();
    let bytes: usize = events
        .iter()
        .map(|e| e["message"].as_str().map_or(0, str::len) + 26)
        .sum();
    st.max_request_bytes = st.max_request_bytes.max(bytes);
    for (i, e) in events.iter().enumerate() {
        let i = i as i32;
        if i < too_old_end || i < expired_end || i >= too_new_start {
            continue;
        }
        st.accepted.push(Accepted {
            group: group.clone(),
            stream: stream.clone(),
            timestamp: e["timestamp"].as_i64().unwrap_or_default(),
            message: e["message"].as_str().unwrap_or_default().to_owned(),
        });
    }
    let mut info = serde_json::Map::new();
    if too_old_end > 0 {
        info.insert("tooOldLogEventEndIndex".into(), too_old_end.into());
    }
    if expired_end > 0 {
        info.insert("expiredLogEventEndIndex".into(), expired_end.into());
    }
    if too_new_start < i32::MAX {
        info.insert("tooNewLogEventStartIndex".into(), too_new_start.into());
    }
    if info.is_empty() {
        ok(json!({"nextSequenceToken": "1"}))
    } else {
        ok(json!({"rejectedLogEventsInfo": info}))
    }
}
