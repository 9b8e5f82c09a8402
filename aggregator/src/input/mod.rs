//! Inputs: listeners for clients that are not Logferry agents: syslog (`syslog/`), JSON
//! over HTTP (`http/`) and OTLP/HTTP logs (`otlp/`). Each feeds the same durable inbox as
//! agents' batches, so parsing, rules, sinks and the exactly-once file sink work the same
//! for them. Stream and datagram inputs go through [`feed`] (batched, no answer to give);
//! request inputs store each request's records with [`admit`] before answering, sharing
//! the HTTP listener and limits of [`web`].
//!
//! An input is one folder with its config, a pure decoder and its listener, and one
//! variant of [`InputConfig`]: adding an input touches this file's enum, [`TYPES`] and the
//! `match`es below, and nothing else.
//!
//! Invariants every input keeps:
//! - What it reads is admitted to the inbox, or dropped with a counted reason
//!   (`logferry_input_dropped_messages_total`), or refused to a client that can send it
//!   again (`logferry_input_requests_total`); nothing is lost silently.
//! - Stream transports read only as fast as the inbox admits (see [`feed`]); request
//!   inputs answer 2xx only once the records are durable, 429 while the inbox is full.
//! - Connections are bounded by a semaphore, messages by `max_message_bytes`, requests
//!   by `max_body_bytes` and `max_decompressed_bytes`, memory by the feed's channel and
//!   one batch per input (per request for request inputs).
//! - At shutdown a listener stops accepting and reading, hands what it holds to the feed
//!   (or finishes the requests it serves), and the feed admits it; [`Inputs::stop`] waits
//!   for that, bounded by [`STOP_TIMEOUT`].

pub mod admit;
pub mod feed;
pub mod http;
pub mod otlp;
pub mod syslog;
pub mod web;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use logferry_shared::config::ConfigError;
use logferry_shared::runtime::Shutdown;
use logferry_shared::wire::DecodeLimits;
use serde::Deserialize;
use tokio::task::JoinHandle;

use crate::inbox::Inbox;
use crate::metrics::Metrics;
use crate::pipeline::Wake;

/// How long [`Inputs::stop`] waits for listeners and feeds before aborting them.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// One `[[inputs]]` entry, selected by `type`.
#[derive(Debug, Clone)]
pub enum InputConfig {
    /// Syslog over UDP, TCP or TLS.
    Syslog(syslog::SyslogInputConfig),
    /// JSON records over HTTP.
    Http(http::HttpInputConfig),
    /// OTLP/HTTP logs.
    Otlp(otlp::OtlpInputConfig),
}

/// The `type`s of [`InputConfig`].
const TYPES: &[&str] = &["syslog", "http", "otlp"];

/// By hand rather than `#[serde(tag = "type")]`: serde buffers an internally tagged
/// enum's content and so loses the path to a bad key; here the error names it
/// (`inputs[0]: idle_timeout: invalid value ...`).
impl<'de> Deserialize<'de> for InputConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = toml::Table::deserialize(d)?;
        let kind = match table.remove("type") {
            Some(toml::Value::String(s)) => s,
            Some(_) => return Err(D::Error::custom("type: must be a string")),
            None => return Err(D::Error::missing_field("type")),
        };
        let rest = toml::Value::Table(table);
        let named = |e: serde_path_to_error::Error<toml::de::Error>| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            match path.as_str() {
                "." => D::Error::custom(inner.message()),
                _ => D::Error::custom(format!("{path}: {}", inner.message())),
            }
        };
        match kind.as_str() {
            "syslog" => serde_path_to_error::deserialize(rest)
                .map(InputConfig::Syslog)
                .map_err(named),
            "http" => serde_path_to_error::deserialize(rest)
                .map(InputConfig::Http)
                .map_err(named),
            "otlp" => serde_path_to_error::deserialize(rest)
                .map(InputConfig::Otlp)
                .map_err(named),
            other => Err(D::Error::unknown_variant(other, TYPES)),
        }
    }
}

impl InputConfig {
    /// The input's name (metrics label, logs, agent id `input:<name>`).
    pub fn name(&self) -> String {
        match self {
            InputConfig::Syslog(c) => c.name(),
            InputConfig::Http(c) => c.name(),
            InputConfig::Otlp(c) => c.name(),
        }
    }

    /// A `[[parse.sources]]`-style (glob over `source.path`, format) entry that forces
    /// this input's format, or `None` for `auto`.
    pub fn forced_format(&self) -> Option<(String, String)> {
        match self {
            InputConfig::Syslog(c) => {
                (c.format != "auto").then(|| (c.source_glob(), c.format.clone()))
            }
            InputConfig::Http(c) => {
                (c.format != "auto").then(|| (c.source_glob(), c.format.clone()))
            }
            // Its lines are JSON this input writes.
            InputConfig::Otlp(c) => Some((c.source_glob(), "json".to_owned())),
        }
    }

    fn validate(&self, key: &str, max_frame_bytes: usize) -> Result<(), ConfigError> {
        match self {
            InputConfig::Syslog(c) => c.validate(key, max_frame_bytes),
            InputConfig::Http(c) => c.validate(key, max_frame_bytes),
            InputConfig::Otlp(c) => c.validate(key, max_frame_bytes),
        }
    }

    pub(crate) async fn start(&self, ctx: &InputContext) -> anyhow::Result<Started> {
        match self {
            InputConfig::Syslog(c) => syslog::start(c, ctx).await,
            InputConfig::Http(c) => http::start(c, ctx).await,
            InputConfig::Otlp(c) => otlp::start(c, ctx).await,
        }
    }
}

/// Checks every input and that their names are unique; keys are `inputs[i].…`.
/// `max_frame_bytes` is the largest frame the pipeline decodes.
pub fn validate(inputs: &[InputConfig], max_frame_bytes: usize) -> Result<(), ConfigError> {
    for (i, input) in inputs.iter().enumerate() {
        let key = format!("inputs[{i}]");
        input.validate(&key, max_frame_bytes)?;
        let name = input.name();
        if inputs[..i].iter().any(|o| o.name() == name) {
            return Err(ConfigError::invalid(
                format!("{key}.name"),
                format!("another input is named `{name}`; give each input its own name"),
            ));
        }
    }
    Ok(())
}

/// Checks an input's `name`: 1 to 64 letters, digits, `_`, `.` or `-`.
pub fn check_name(key: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            key,
            "1 to 64 letters, digits, `_`, `.` or `-`",
        ))
    }
}

/// What every input needs from the aggregator.
#[derive(Debug, Clone)]
pub struct InputContext {
    /// Where batches go.
    pub inbox: Arc<Inbox>,
    /// Wakes the pipeline after a batch is admitted.
    pub wake: Arc<Wake>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The process's shutdown: stops every input. (Each input also gets a stop signal of
    /// its own, so a reload can stop one; see [`Inputs::reload`].)
    pub shutdown: Shutdown,
    /// What the pipeline decodes: a stored batch must stay within it.
    pub limits: DecodeLimits,
}

/// A started input: its address and its tasks (listener first, then feed).
#[derive(Debug)]
pub struct Started {
    /// The input's name.
    pub name: String,
    /// The bound address.
    pub addr: SocketAddr,
    /// Tasks to wait for at shutdown, in order.
    pub tasks: Vec<JoinHandle<()>>,
}

/// Every running input.
#[derive(Debug)]
pub struct Inputs {
    ctx: InputContext,
    running: Vec<RunningInput>,
}

/// One input that runs: the config it was started from, its own stop signal (triggered by
/// the process's shutdown too) and its tasks.
#[derive(Debug)]
struct RunningInput {
    config: InputConfig,
    stop: Shutdown,
    started: Started,
}

/// What [`Inputs::reload`] did, by input name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// Inputs the new config no longer has, stopped.
    pub stopped: Vec<String>,
    /// Inputs the new config changed, stopped and started with their new settings.
    pub restarted: Vec<String>,
    /// Inputs new in the config, started.
    pub started: Vec<String>,
    /// Inputs that could not start with their new settings, and why. A changed input that
    /// fails runs on with its previous settings when those start again.
    pub failed: Vec<(String, String)>,
}

impl Inputs {
    /// Starts every input; if one fails, stops those already started and says which.
    pub async fn start(configs: &[InputConfig], ctx: &InputContext) -> anyhow::Result<Inputs> {
        let mut inputs = Inputs {
            ctx: ctx.clone(),
            running: Vec::new(),
        };
        for (i, cfg) in configs.iter().enumerate() {
            match inputs.start_one(cfg).await {
                Ok(r) => inputs.running.push(r),
                Err(e) => {
                    inputs.abort();
                    return Err(e.context(format!("inputs[{i}] ({})", cfg.name())));
                }
            }
        }
        Ok(inputs)
    }

    /// Starts one input with a stop signal of its own, which the process's shutdown also
    /// triggers.
    async fn start_one(&self, cfg: &InputConfig) -> anyhow::Result<RunningInput> {
        let stop = Shutdown::new();
        let process = self.ctx.shutdown.clone();
        let linked = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = process.wait() => linked.trigger(),
                () = linked.wait() => {}
            }
        });
        let ctx = InputContext {
            shutdown: stop.clone(),
            ..self.ctx.clone()
        };
        match cfg.start(&ctx).await {
            Ok(started) => Ok(RunningInput {
                config: cfg.clone(),
                stop,
                started,
            }),
            Err(e) => {
                stop.trigger();
                Err(e)
            }
        }
    }

    /// Where each input listens, by name.
    pub fn addrs(&self) -> Vec<(String, SocketAddr)> {
        self.running
            .iter()
            .map(|r| (r.started.name.clone(), r.started.addr))
            .collect()
    }

    /// Applies a reloaded config's inputs (SIGHUP). Inputs whose settings are unchanged
    /// keep running untouched. Removed and changed inputs stop as at shutdown: they stop
    /// accepting and reading, and what they read is admitted to the inbox before they are
    /// gone, so nothing they acknowledged or read is lost. Then changed and new inputs
    /// start. A changed input that cannot start with its new settings (a port in use, a
    /// missing certificate) is started again with its old ones and reported in
    /// [`Reloaded::failed`]; a new input that cannot start is only reported.
    pub async fn reload(&mut self, configs: &[InputConfig]) -> Reloaded {
        let mut done = Reloaded::default();
        let mut keep = Vec::new();
        let mut stopping = Vec::new();
        let mut previous: HashMap<String, InputConfig> = HashMap::new();
        for r in self.running.drain(..) {
            let name = r.started.name.clone();
            match configs.iter().find(|c| c.name() == name) {
                Some(c) if same(c, &r.config) => keep.push(r),
                Some(_) => {
                    previous.insert(name, r.config.clone());
                    stopping.push(r);
                }
                None => {
                    done.stopped.push(name);
                    stopping.push(r);
                }
            }
        }
        self.running = keep;
        stop_all(stopping).await;
        for cfg in configs {
            let name = cfg.name();
            if self.running.iter().any(|r| r.started.name == name) {
                continue;
            }
            let old = previous.remove(&name);
            match self.start_one(cfg).await {
                Ok(r) => {
                    self.running.push(r);
                    match old {
                        Some(_) => done.restarted.push(name),
                        None => done.started.push(name),
                    }
                }
                Err(e) => {
                    let mut reason = format!("{e:#}");
                    if let Some(old) = old {
                        match self.start_one(&old).await {
                            Ok(r) => {
                                self.running.push(r);
                                reason.push_str("; running on with its previous settings");
                            }
                            Err(e2) => reason.push_str(&format!(
                                "; its previous settings failed too ({e2:#}): the input is stopped"
                            )),
                        }
                    }
                    done.failed.push((name, reason));
                }
            }
        }
        done
    }

    /// Stops every input and waits until each has handed what it read to the inbox,
    /// bounded by [`STOP_TIMEOUT`].
    pub async fn stop(self) {
        stop_all(self.running).await;
    }

    fn abort(&self) {
        for r in &self.running {
            r.stop.trigger();
            for t in &r.started.tasks {
                t.abort();
            }
        }
    }
}

/// Whether two configs of an input are the same (configs hold no floats or maps whose
/// order could differ, so their debug forms compare them).
fn same(a: &InputConfig, b: &InputConfig) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

/// Triggers the inputs' stop signals and waits for their tasks, bounded by
/// [`STOP_TIMEOUT`]; tasks still running then are aborted (logged).
async fn stop_all(running: Vec<RunningInput>) {
    if running.is_empty() {
        return;
    }
    let names: Vec<String> = running.iter().map(|r| r.started.name.clone()).collect();
    for r in &running {
        r.stop.trigger();
    }
    let tasks: Vec<JoinHandle<()>> = running.into_iter().flat_map(|r| r.started.tasks).collect();
    let aborts: Vec<_> = tasks.iter().map(JoinHandle::abort_handle).collect();
    let joined = tokio::time::timeout(STOP_TIMEOUT, async {
        for t in tasks {
            let _ = t.await;
        }
    })
    .await;
    if joined.is_err() {
        tracing::error!(inputs = ?names, "inputs did not stop in time; aborted (unadmitted messages are lost)");
        for a in aborts {
            a.abort();
        }
    }
}

#[derive(Debug, Default)]
pub struct LogLimiter {
    last_s: AtomicU64,
}

impl LogLimiter {
    /// Least time between two lines.
    pub const PERIOD: Duration = Duration::from_secs(10);

    /// True if a line may be logged now.
    pub fn allow(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .max(1);
        let last = self.last_s.load(Ordering::Relaxed);
        if last != 0 && now < last + Self::PERIOD.as_secs() {
            return false;
        }
        self.last_s
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

#[cfg(test)]
mod reload_tests;
