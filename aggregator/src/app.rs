//! Builds the aggregator from its config and runs it until shutdown.
//!
//! Shutdown order: stop accepting connections and let in-flight requests finish (bounded
//! by the drain timeout), let inputs admit what they read, then let the pipeline drain
//! the inbox for a few seconds. Every batch answered 2xx is durable in the inbox before
//! the answer; what the pipeline did not reach is processed after the next start.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use logferry_shared::runtime::Shutdown;
use logferry_shared::tls;
use logferry_shared::wire::DecodeLimits;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::admin::{self, AdminState};
use crate::config::AggregatorConfig;
use crate::inbox::Inbox;
use crate::ingest::{self, IngestState};
use crate::metrics::Metrics;
use crate::pipeline::{self, Wake};
use crate::{http, input, sink};

/// A started aggregator.
#[derive(Debug)]
pub struct Running {
    /// Where agents connect.
    pub ingest_addr: SocketAddr,
    /// Where the admin endpoint listens.
    pub admin_addr: SocketAddr,
    /// The inputs (syslog listeners), stopped before the pipeline drains.
    pub inputs: input::Inputs,
    shutdown: Shutdown,
    ingest: JoinHandle<()>,
    admin: JoinHandle<()>,
    pipeline: std::thread::JoinHandle<()>,
    wake: Arc<Wake>,
}

/// Binds the listeners and starts serving.
pub async fn start(cfg: AggregatorConfig) -> anyhow::Result<Running> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("data_dir {}", cfg.data_dir.display()))?;
    let tokens = cfg.agent_tokens()?;
    let tls_config = tls::server_config(
        &cfg.ingest.tls.cert,
        &cfg.ingest.tls.key,
        cfg.ingest.tls.client_ca.as_deref(),
    )?;
    let metrics = Arc::new(Metrics::new());
    let inbox = Arc::new(
        Inbox::open(&cfg.data_dir.join("inbox"), cfg.inbox.max_bytes)
            .context("opening the inbox")?,
    );
    let mut sinks = Vec::new();
    for (name, sc) in &cfg.sinks {
        sinks.push(sink::build(name, sc).with_context(|| format!("sink {name}"))?);
    }
    let limits = DecodeLimits {
        max_frame_bytes: cfg.ingest.max_body_bytes,
        max_raw_bytes: cfg.ingest.max_decompressed_bytes,
    };
    let shutdown = Shutdown::new();
    let wake = Arc::new(Wake::default());
    let detector = cfg.detector()?;
    let setup = pipeline::PipelineSetup {
        inbox: inbox.clone(),
        detector,
        sinks,
        limits,
        workers: cfg.pipeline.workers,
        metrics: metrics.clone(),
        wake: wake.clone(),
    };
    let pipeline = pipeline::spawn(setup, shutdown.clone()).context("starting the pipeline")?;

    let ingest_listener = TcpListener::bind(cfg.ingest.listen)
        .await
        .with_context(|| format!("ingest.listen {}", cfg.ingest.listen))?;
    let admin_listener = TcpListener::bind(cfg.admin.listen)
        .await
        .with_context(|| format!("admin.listen {}", cfg.admin.listen))?;
    let ingest_addr = ingest_listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;

    let state = Arc::new(IngestState {
        tokens: tokens.into_iter().map(String::into_bytes).collect(),
        max_body_bytes: cfg.ingest.max_body_bytes,
        limits,
        inbox: inbox.clone(),
        wake: wake.clone(),
        metrics: metrics.clone(),
    });
    let ingest = tokio::spawn(http::serve_tls(
        ingest_listener,
        Arc::new(tls_config),
        ingest::router(state),
        cfg.ingest.max_connections,
        shutdown.clone(),
    ));
    let metrics_for_inputs = metrics.clone();
    let admin_state = AdminState {
        metrics,
        inbox: inbox.clone(),
        data_dir: cfg.data_dir.clone(),
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
    tracing::info!(component = "ingest", addr = %ingest_addr, mtls = cfg.ingest.tls.client_ca.is_some(), "listening");
    tracing::info!(component = "admin", addr = %admin_addr, "listening");
    let inputs = input::Inputs::start(
        &cfg.inputs,
        &input::InputContext {
            inbox: inbox.clone(),
            wake: wake.clone(),
            metrics: metrics_for_inputs,
            shutdown: shutdown.clone(),
        },
    )
    .await?;
    tracing::info!(waiting_batches = inbox.len(), "aggregator started");
    Ok(Running {
        ingest_addr,
        admin_addr,
        inputs,
        shutdown,
        ingest,
        admin,
        pipeline,
        wake,
    })
}

impl Running {
    /// Stops accepting, drains in-flight requests, lets the pipeline drain, and returns.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.trigger();
        let _ = self.ingest.await;
        self.inputs.stop().await;
        let _ = tokio::time::timeout(http::DRAIN_TIMEOUT, self.admin).await;
        self.wake.notify();
        let pipeline = self.pipeline;
        tokio::task::spawn_blocking(move || pipeline.join())
            .await
            .context("joining the pipeline")?
            .map_err(|_| anyhow::anyhow!("the pipeline panicked"))?;
        Ok(())
    }
}
