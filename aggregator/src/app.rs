//! Builds the aggregator from its config and runs it until shutdown.
//!
//! Shutdown order: stop accepting connections, let in-flight requests finish (bounded by
//! the drain timeout), then let the sink writer commit what it holds and stop. Every batch
//! answered 2xx is durable before the process exits.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use logferry_shared::runtime::Shutdown;
use logferry_shared::tls;
use logferry_shared::wire::DecodeLimits;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::AggregatorConfig;
use crate::dedup::Dedup;
use crate::ingest::{self, IngestState};
use crate::metrics::Metrics;
use crate::writer::SinkWriter;
use crate::{admin, http, sink};

/// A started aggregator.
#[derive(Debug)]
pub struct Running {
    /// Where agents connect.
    pub ingest_addr: SocketAddr,
    /// Where the admin endpoint listens.
    pub admin_addr: SocketAddr,
    shutdown: Shutdown,
    ingest: JoinHandle<()>,
    admin: JoinHandle<()>,
    writer: std::thread::JoinHandle<()>,
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
    let dedup = Dedup::open(&cfg.data_dir).context("opening the accepted-batch table")?;
    let mut sinks = Vec::new();
    for (name, sc) in &cfg.sinks {
        sinks.push(sink::build(name, sc).with_context(|| format!("sink {name}"))?);
    }
    let (writer, writer_thread) = SinkWriter::spawn(sinks, dedup, metrics.clone())?;

    let ingest_listener = TcpListener::bind(cfg.ingest.listen)
        .await
        .with_context(|| format!("ingest.listen {}", cfg.ingest.listen))?;
    let admin_listener = TcpListener::bind(cfg.admin.listen)
        .await
        .with_context(|| format!("admin.listen {}", cfg.admin.listen))?;
    let ingest_addr = ingest_listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;

    let shutdown = Shutdown::new();
    let state = Arc::new(IngestState {
        tokens: tokens.into_iter().map(String::into_bytes).collect(),
        max_body_bytes: cfg.ingest.max_body_bytes,
        limits: DecodeLimits {
            max_frame_bytes: cfg.ingest.max_body_bytes,
            max_raw_bytes: cfg.ingest.max_decompressed_bytes,
        },
        writer,
        metrics: metrics.clone(),
    });
    let ingest = tokio::spawn(http::serve_tls(
        ingest_listener,
        Arc::new(tls_config),
        ingest::router(state),
        cfg.ingest.max_connections,
        shutdown.clone(),
    ));
    let admin_shutdown = shutdown.clone();
    let admin = tokio::spawn(async move {
        let served = axum::serve(admin_listener, admin::router(metrics))
            .with_graceful_shutdown(async move { admin_shutdown.wait().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "admin endpoint failed");
        }
    });
    tracing::info!(component = "ingest", addr = %ingest_addr, mtls = cfg.ingest.tls.client_ca.is_some(), "listening");
    tracing::info!(component = "admin", addr = %admin_addr, "listening");
    Ok(Running {
        ingest_addr,
        admin_addr,
        shutdown,
        ingest,
        admin,
        writer: writer_thread,
    })
}

impl Running {
    /// Stops accepting, drains in-flight requests and the sink writer, and returns.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.trigger();
        // The ingest task owns the router, and with it the last writer handle; once it
        // ends the writer sees its queue close, commits what it holds and exits.
        let _ = self.ingest.await;
        let _ = tokio::time::timeout(http::DRAIN_TIMEOUT, self.admin).await;
        tokio::task::spawn_blocking(move || self.writer.join())
            .await
            .context("joining the sink writer")?
            .map_err(|_| anyhow::anyhow!("the sink writer panicked"))?;
        Ok(())
    }
}
