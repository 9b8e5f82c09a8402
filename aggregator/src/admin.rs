//! The aggregator's admin endpoint (plain HTTP, 127.0.0.1 by default): `/healthz` and
//! `/metrics` so far.

use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use crate::http::error;
use crate::metrics::Metrics;

/// The admin router.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route(
            "/metrics",
            get(move || {
                let m = metrics.clone();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        m.encode(),
                    )
                        .into_response()
                }
            }),
        )
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "not found",
                "see /healthz and /metrics",
            )
        })
}
