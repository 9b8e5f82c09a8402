//! The otlp input: an OTLP/HTTP logs receiver (`POST /v1/logs`, protobuf or OTLP JSON,
//! gzip or zstd), for applications instrumented with OpenTelemetry. No gRPC.
//!
//! - [`config`]: `[[inputs]] type = "otlp"`.
//! - [`codec`]: request decoding and answer encoding in both encodings.
//! - [`map`]: the pure mapping from OTLP log records to our events (the table is there).
//! - [`handler`]: the endpoint and its answers.
//!
//! The listener, tokens and body limits are [`super::web`]'s; records are stored by
//! [`super::admit::InboxWriter`] as one batch per request, before the 200. Each record
//! becomes one JSON line, always parsed as `json`; each resource one source:
//! `source.type` = `otlp`, `source.path` = `otlp+http[s]://<peer ip>/<input name>`,
//! `host` = the resource's `host.name` or else the peer's address, `k8s` from the
//! resource's `k8s.*` attributes.

pub mod codec;
pub mod config;
pub mod handler;
pub mod map;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;

pub use config::OtlpInputConfig;

use super::admit::InboxWriter;
use super::web::{self, auth::Tokens, body::BodyLimits};
use super::{InputContext, LogLimiter, Started};

/// Binds the listener and starts it.
pub async fn start(cfg: &OtlpInputConfig, ctx: &InputContext) -> anyhow::Result<Started> {
    let name = cfg.name();
    let server = cfg.server();
    let tokens = Tokens::read(&cfg.tokens).map_err(anyhow::Error::msg)?;
    let listener = web::Listener::bind(&server).await?;
    let addr = listener.local_addr()?;
    if tokens.is_open() && !addr.ip().is_loopback() {
        tracing::warn!(input = %name, %addr, "the otlp input takes requests without a token beyond loopback; set tokens");
    }
    let metrics = ctx.metrics.input(&name);
    let state = Arc::new(handler::OtlpState {
        name: name.clone(),
        scheme: cfg.scheme(),
        tokens,
        limits: BodyLimits {
            max_body_bytes: cfg.max_body_bytes,
            max_decompressed_bytes: cfg.max_decompressed_bytes,
            timeout: cfg.body_timeout,
        },
        writer: InboxWriter::new(&name, ctx),
        metrics: metrics.clone(),
        log: LogLimiter::default(),
        decoding: tokio::sync::Semaphore::new(web::DECODING_AT_ONCE),
    });
    let fallback_metrics = metrics.clone();
    let router = Router::new()
        .route(handler::LOGS_PATH, post(handler::post_logs))
        .fallback(move || async move {
            fallback_metrics.request("not_found");
            (
                StatusCode::NOT_FOUND,
                [(axum::http::header::CONTENT_TYPE, codec::JSON)],
                codec::status(
                    codec::Encoding::Json,
                    StatusCode::NOT_FOUND,
                    "this receiver takes logs only: POST /v1/logs",
                ),
            )
        })
        .with_state(state);
    let task = tokio::spawn(web::serve(
        listener,
        name.clone(),
        router,
        metrics,
        ctx.shutdown.clone(),
    ));
    tracing::info!(component = %format!("input.{name}"), addr = %addr, tls = cfg.tls.is_some(), "listening");
    Ok(Started {
        name,
        addr,
        tasks: vec![task],
    })
}
