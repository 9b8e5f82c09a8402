//! Builds the agent from its config and runs it until shutdown.
//!
//! Threads and tasks: one tailer thread (blocking file reads, batching, spool commits),
//! one shipper task (HTTP sends), the admin server. Shutdown: the tailer stops reading and
//! seals its open batch into the spool; the shipper stops starting sends and gives those
//! in flight a short grace period; the spool is flushed. Unacknowledged batches stay in
//! the spool and are sent after the next start.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use logferry_shared::runtime::Shutdown;
use logferry_shared::tls;
use reqwest::header::HeaderValue;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::admin::{self, AdminState};
use crate::config::AgentConfig;
use crate::metrics::Metrics;
use crate::ship::{Backoff, Shipper, Target, TargetCell};
use crate::spool::Spool;
use crate::tailer::{ReloadSlot, Tailer};

/// Path of the aggregator's batch endpoint.
pub const BATCH_PATH: &str = "/v1/batch";

/// A started agent.
#[derive(Debug)]
pub struct Running {
    /// Where the admin endpoint listens.
    pub admin_addr: SocketAddr,
    /// The agent's id.
    pub agent_id: String,
    shutdown: Shutdown,
    tailer: std::thread::JoinHandle<()>,
    shipper: JoinHandle<()>,
    admin: JoinHandle<()>,
    spool: Arc<Spool>,
    /// The config running now (settings that need a restart keep their first value).
    cfg: AgentConfig,
    target: Arc<TargetCell>,
    tailer_reload: Arc<ReloadSlot>,
}

/// Builds the HTTP client for the aggregator.
pub fn http_client(cfg: &AgentConfig) -> anyhow::Result<reqwest::Client> {
    let out = &cfg.output;
    let identity = match (&out.tls.cert, &out.tls.key) {
        (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
        _ => None,
    };
    let tls = tls::client_config(out.tls.ca.as_deref(), identity)?;
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .user_agent(concat!("logferry-agent/", env!("CARGO_PKG_VERSION")))
        .timeout(out.request_timeout)
        .connect_timeout(std::time::Duration::from_secs(10))
        .pool_idle_timeout(std::time::Duration::from_secs(60))
        .tcp_nodelay(true)
        .build()?)
}

/// The shipper's target for `cfg`: client, URL, token, window and retry timing.
pub fn ship_target(cfg: &AgentConfig) -> anyhow::Result<Target> {
    let auth = match cfg.token()? {
        Some(t) => Some(
            HeaderValue::from_str(&format!("Bearer {t}"))
                .context("output.token has characters not allowed in a header")?,
        ),
        None => None,
    };
    Ok(Target {
        client: http_client(cfg)?,
        url: format!("{}{BATCH_PATH}", cfg.output.url.trim_end_matches('/')),
        auth,
        max_in_flight: cfg.output.max_in_flight,
        backoff: Backoff {
            initial: cfg.output.retry_initial,
            max: cfg.output.retry_max,
        },
    })
}

/// Opens the spool, binds the admin listener and starts tailing and shipping.
pub async fn start(cfg: AgentConfig) -> anyhow::Result<Running> {
    let cfg_kept = cfg.clone();
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("data_dir {}", cfg.data_dir.display()))?;
    let metrics = Arc::new(Metrics::new());
    let (spool, moved) = Spool::open(
        &cfg.data_dir.join("spool"),
        cfg.spool.max_bytes,
        cfg.spool.when_full,
    )
    .context("opening the spool")?;
    if moved.is_some() {
        metrics.spool_recreated.inc();
    }
    let spool = Arc::new(spool);
    let agent_id = spool.agent_id(cfg.agent_id.as_deref())?;
    let target = Arc::new(TargetCell::new(ship_target(&cfg)?));
    let admin_listener = tokio::net::TcpListener::bind(cfg.admin.listen)
        .await
        .with_context(|| format!("admin.listen {}", cfg.admin.listen))?;
    let admin_addr = admin_listener.local_addr()?;

    let shutdown = Shutdown::new();
    let wake = Arc::new(Notify::new());
    let tailer = Tailer::new(
        &cfg,
        spool.clone(),
        metrics.clone(),
        wake.clone(),
        shutdown.clone(),
        agent_id.clone(),
    )?;
    let tailer_reload = tailer.reload_slot();
    let tailer = std::thread::Builder::new()
        .name("tailer".into())
        .spawn(move || tailer.run())?;
    let shipper = Shipper {
        target: target.clone(),
        spool: spool.clone(),
        metrics: metrics.clone(),
        wake,
        shutdown: shutdown.clone(),
    };
    let shipper = tokio::spawn(shipper.run());
    let admin_state = AdminState {
        metrics,
        spool: spool.clone(),
        spool_max_bytes: cfg.spool.max_bytes,
    };
    let admin_shutdown = shutdown.clone();
    let admin = tokio::spawn(async move {
        let served = axum::serve(admin_listener, admin::router(admin_state))
            .with_graceful_shutdown(async move { admin_shutdown.wait().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "admin endpoint failed");
        }
    });
    tracing::info!(component = "admin", addr = %admin_addr, "listening");
    tracing::info!(agent_id = %agent_id, pending_batches = spool.len(), "agent started");
    Ok(Running {
        admin_addr,
        agent_id,
        shutdown,
        tailer,
        shipper,
        admin,
        spool,
        cfg: cfg_kept,
        target,
        tailer_reload,
    })
}

impl Running {
    /// Applies a reloaded config without losing data: inputs and `[tail]` (files no
    /// input reaches any more are read to their end and let go), the output's URL,
    /// TLS, token, window, retries and batch settings. `data_dir`, `agent_id`,
    /// `[spool]` and `[admin]` change only at a restart; their changes are named in
    /// the returned list and logged. A config whose TLS files or token cannot be read
    /// is refused as a whole and the running one kept.
    pub fn reload(&mut self, mut new: AgentConfig) -> anyhow::Result<Vec<&'static str>> {
        let target = ship_target(&new)?;
        let old = &self.cfg;
        let mut restart = Vec::new();
        if new.data_dir != old.data_dir {
            restart.push("data_dir");
        }
        if new.agent_id != old.agent_id {
            restart.push("agent_id");
        }
        if new.spool.max_bytes != old.spool.max_bytes || new.spool.when_full != old.spool.when_full
        {
            restart.push("spool");
        }
        if new.admin.listen != old.admin.listen {
            restart.push("admin.listen");
        }
        if !restart.is_empty() {
            tracing::warn!(keys = ?restart, "these settings change only at a restart; keeping the running values");
        }
        new.data_dir = old.data_dir.clone();
        new.agent_id = old.agent_id.clone();
        new.spool = old.spool.clone();
        new.admin = old.admin.clone();
        self.target.set(target);
        self.tailer_reload.put(new.clone());
        self.cfg = new;
        tracing::info!("config reloaded");
        Ok(restart)
    }

    /// Stops reading, spools what was read, stops shipping and flushes the spool.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.trigger();
        let tailer = self.tailer;
        tokio::task::spawn_blocking(move || tailer.join())
            .await
            .context("joining the tailer")?
            .map_err(|_| anyhow::anyhow!("the tailer panicked"))?;
        let _ = self.shipper.await;
        let _ = self.admin.await;
        self.spool.flush()?;
        tracing::info!(pending_batches = self.spool.len(), "agent stopped");
        Ok(())
    }
}
