//! The agent's admin endpoint (plain HTTP, 127.0.0.1 by default): `/healthz` (the process
//! serves requests), `/readyz` (the spool is below its limit, so reading is not blocked)
//! and `/metrics`.

use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use crate::metrics::Metrics;
use crate::spool::Spool;

/// State the admin handlers read.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The spool.
    pub spool: Arc<Spool>,
    /// Spool limit.
    pub spool_max_bytes: u64,
}

/// The admin router.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(serde_json::json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Json(serde_json::json!({"error": "not found", "detail": "see /healthz, /readyz and /metrics"})),
            )
        })
        .with_state(state)
}

async fn readyz(axum::extract::State(st): axum::extract::State<AdminState>) -> impl IntoResponse {
    let bytes = st.spool.bytes();
    let body = serde_json::json!({
        "spool_bytes": bytes,
        "spool_max_bytes": st.spool_max_bytes,
        "spool_batches": st.spool.len(),
    });
    if bytes >= st.spool_max_bytes {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                serde_json::json!({"error": "not ready", "detail": {"reason": "spool full", "spool": body}}),
            ),
        )
    } else {
        (
            StatusCode::OK,
            Json(serde_json::json!({"status": "ready", "spool": body})),
        )
    }
}

async fn metrics(axum::extract::State(st): axum::extract::State<AdminState>) -> impl IntoResponse {
    st.metrics.spool_bytes.set(st.spool.bytes() as i64);
    st.metrics.spool_batches.set(st.spool.len() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        st.metrics.encode(),
    )
}
