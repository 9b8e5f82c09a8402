//! The http input: `POST /v1/logs` with JSON records, for scripts and applications that
//! cannot run an agent.
//!
//! - [`config`]: `[[inputs]] type = "http"`.
//! - [`decode`]: the pure body decoder (object, array, NDJSON → one line per record).
//! - [`handler`]: the endpoint and its answers.
//!
//! The listener, tokens and body limits are [`super::web`]'s; records are stored by
//! [`super::admit::InboxWriter`] as one batch per request, before the 200. Each record is
//! one event whose line is the record's JSON, parsed as `format` says (default `json`:
//! time, level and message from the usual keys, the rest into `fields`). Source:
//! `source.type` = `http`, `source.path` = `http[s]://<peer ip>/<input name>`, `host` =
//! the peer's address.

pub mod config;
pub mod decode;
pub mod handler;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;

pub use config::HttpInputConfig;

use super::admit::InboxWriter;
use super::web::{self, auth::Tokens, body::BodyLimits};
use super::{InputContext, LogLimiter, Started};
use crate::http::error;

/// Binds the listener and starts it.
pub async fn start(cfg: &HttpInputConfig, ctx: &InputContext) -> anyhow::Result<Started> {
    let name = cfg.name();
    let server = cfg.server();
    let tokens = Tokens::read(&cfg.tokens).map_err(anyhow::Error::msg)?;
    let listener = web::Listener::bind(&server).await?;
    let addr = listener.local_addr()?;
    if tokens.is_open() && !addr.ip().is_loopback() {
        tracing::warn!(input = %name, %addr, "the http input takes requests without a token beyond loopback; set tokens");
    }
    let metrics = ctx.metrics.input(&name);
    let state = Arc::new(handler::HttpState {
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
            error(
                StatusCode::NOT_FOUND,
                "not found",
                format!("POST {}", handler::LOGS_PATH),
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
    tracing::info!(component = %format!("input.{name}"), addr = %addr, tls = cfg.tls.is_some(), format = %cfg.format, "listening");
    Ok(Started {
        name,
        addr,
        tasks: vec![task],
    })
}
