//! The agent's admin endpoint (plain HTTP, 127.0.0.1 by default): `/healthz` (the process
//! serves requests), `/readyz` (the spool has room, so reading is not blocked),
//! `/metrics`, and `/dead-letter` (the batches the aggregator refused for good: seq, size,
//! records, status, reason and time; never their lines).

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
        .route("/dead-letter", get(dead_letter))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Json(serde_json::json!({"error": "not found", "detail": "see /healthz, /readyz, /metrics and /dead-letter"})),
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
        "reading_blocked": st.spool.is_blocked(),
    });
    // Full, or blocked below the limit because the next batch does not fit.
    if bytes >= st.spool_max_bytes || st.spool.is_blocked() {
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

async fn dead_letter(
    axum::extract::State(st): axum::extract::State<AdminState>,
) -> axum::response::Response {
    // sled reads block: off the reactor threads.
    let listed = tokio::task::spawn_blocking(move || st.spool.dead_letters()).await;
    match listed {
        Ok(Ok(list)) => Json(crate::dead_letter::to_json(&list)).into_response(),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({"error": "cannot read the spool", "detail": e.to_string()})),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({"error": "internal error", "detail": e.to_string()})),
        )
            .into_response(),
    }
}
