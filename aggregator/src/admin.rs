//! The aggregator's admin endpoint (plain HTTP, 127.0.0.1 by default): `/healthz` (the
//! process serves requests), `/readyz` (the data dir is writable and the inbox is below
//! its limit; 503 with the reason otherwise) and `/metrics`.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::http::error;
use crate::inbox::Inbox;
use crate::metrics::Metrics;

/// What the admin handlers read.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The inbox.
    pub inbox: Arc<Inbox>,
    /// The data dir, checked for writability.
    pub data_dir: PathBuf,
}

/// The admin router.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "not found",
                "see /healthz, /readyz and /metrics",
            )
        })
        .with_state(state)
}

async fn readyz(State(st): State<AdminState>) -> Response {
    let dir = st.data_dir.clone();
    let writable = tokio::task::spawn_blocking(move || {
        let probe = dir.join(".readyz-probe");
        std::fs::write(&probe, b"ok").and_then(|_| std::fs::remove_file(&probe))
    })
    .await;
    let inbox = serde_json::json!({"bytes": st.inbox.bytes(), "max_bytes": st.inbox.max_bytes(), "batches": st.inbox.len()});
    let reason = match writable {
        Ok(Ok(())) if st.inbox.bytes() >= st.inbox.max_bytes() => Some("inbox full".to_owned()),
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("data dir not writable: {e}")),
        Err(e) => Some(format!("data dir check failed: {e}")),
    };
    match reason {
        Some(reason) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready",
            serde_json::json!({"reason": reason, "inbox": inbox}),
        ),
        None => Json(serde_json::json!({"status": "ready", "inbox": inbox})).into_response(),
    }
}

async fn metrics(State(st): State<AdminState>) -> Response {
    st.metrics.inbox_bytes.set(st.inbox.bytes() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        st.metrics.encode(),
    )
        .into_response()
}
