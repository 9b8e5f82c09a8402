//! A harness for the HTTP inputs' tests: the input on 127.0.0.1 with a real inbox (and no
//! pipeline: tests read the stored batches back).

use std::sync::Arc;
use std::time::Duration;

use logferry_shared::runtime::Shutdown;
use logferry_shared::wire::{self, DecodeLimits};

use crate::inbox::Inbox;
use crate::input::{InputConfig, InputContext, Started};
use crate::metrics::Metrics;
use crate::pipeline::Wake;

const DEADLINE: Duration = Duration::from_secs(10);

/// One stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    /// The line.
    pub line: String,
    /// Its observed time.
    pub observed_ms: u64,
    /// Its source's path.
    pub path: String,
    /// Its source's attributes.
    pub attrs: Vec<(String, String)>,
}

/// A running input.
pub struct Harness {
    _dir: tempfile::TempDir,
    /// The inbox.
    pub inbox: Arc<Inbox>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    shutdown: Shutdown,
    started: Option<Started>,
}

impl Harness {
    /// Starts the input `toml` (an `[[inputs]]` table's body; `listen` defaults to
    /// 127.0.0.1:0) with an inbox of `inbox_max` bytes.
    pub async fn start(toml: &str, inbox_max: u64) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let text = match toml.contains("listen") {
            true => toml.to_owned(),
            false => format!("listen = \"127.0.0.1:0\"\n{toml}"),
        };
        let cfg: InputConfig = toml::from_str(&text).unwrap();
        crate::input::validate(std::slice::from_ref(&cfg), 16 << 20).unwrap();
        let inbox = Arc::new(Inbox::open(&dir.path().join("inbox"), inbox_max).unwrap());
        let metrics = Arc::new(Metrics::new());
        let shutdown = Shutdown::new();
        let ctx = InputContext {
            inbox: inbox.clone(),
            wake: Arc::new(Wake::default()),
            metrics: metrics.clone(),
            shutdown: shutdown.clone(),
            limits: DecodeLimits::default(),
        };
        let started = cfg.start(&ctx).await.unwrap();
        Harness {
            _dir: dir,
            inbox,
            metrics,
            shutdown,
            started: Some(started),
        }
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }

    /// The bound address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.started.as_ref().unwrap().addr
    }

    /// Every record stored so far, in order.
    pub fn records(&self) -> Vec<Rec> {
        let mut out = Vec::new();
        for (_, frame) in self.inbox.read_after(None, 100_000).unwrap() {
            let f = wire::decode_frame(&frame, &DecodeLimits::default()).unwrap();
            let b = f.batch().unwrap();
            for r in &b.records {
                let src = &b.sources[r.source as usize];
                out.push(Rec {
                    line: String::from_utf8(r.line.to_vec()).unwrap(),
                    observed_ms: r.observed_ms,
                    path: src.path.to_owned(),
                    attrs: src
                        .attrs
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                });
            }
        }
        out
    }

    /// The value of the series `series` (e.g. `logferry_input_requests_total{...}`).
    pub fn metric(&self, series: &str) -> Option<f64> {
        let text = self.metrics.encode();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    /// Polls until `series` reaches `value`; fails after a deadline.
    pub async fn wait_metric(&self, series: &str, value: f64) {
        let until = tokio::time::Instant::now() + DEADLINE;
        while self.metric(series) != Some(value) {
            assert!(
                tokio::time::Instant::now() < until,
                "{series} is {:?}, not {value}:\n{}",
                self.metric(series),
                self.metrics.encode()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Triggers shutdown and waits for the listener to finish.
    pub async fn stop(&mut self) {
        self.shutdown.trigger();
        if let Some(s) = self.started.take() {
            for t in s.tasks {
                tokio::time::timeout(DEADLINE, t).await.unwrap().unwrap();
            }
        }
    }
}

/// The series name of input `input`'s requests answered `result`.
pub fn requests(input: &str, result: &str) -> String {
    format!("logferry_input_requests_total{{input=\"{input}\",result=\"{result}\"}}")
}

/// A reqwest client (rustls preconfigured, as reqwest is built without a default
/// provider).
pub fn client() -> reqwest::Client {
    crate::notify::http_client(Duration::from_secs(30)).unwrap()
}
