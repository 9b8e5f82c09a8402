//! `GET|DELETE /api/sinks/{name}/dead-letters`: the events a queued sink's service refused
//! for good, kept for inspection (see `sink::queue`).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{error, AdminState};

/// Most dead letters per page.
pub const MAX_PAGE: usize = 1_000;

/// The query of `GET /api/sinks/{name}/dead-letters`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterQuery {
    /// Only dead letters after this id (the `next` of the previous page).
    after: Option<u64>,
    /// At most this many (default 100, at most [`MAX_PAGE`]).
    limit: Option<usize>,
}

fn queue_of<'a>(
    st: &'a AdminState,
    name: &str,
) -> Result<&'a std::sync::Arc<crate::sink::queue::SinkQueue>, Box<Response>> {
    st.sinks.queue(name).ok_or_else(|| {
        let detail = if st.sinks.has(name) {
            format!("sink {name} writes directly and keeps no dead letters")
        } else {
            format!("no sink {name}")
        };
        Box::new(error(StatusCode::NOT_FOUND, "not found", detail))
    })
}

/// Lists dead letters, oldest first: `{"dead_letters":[{"id","at","reason","event"}], "next"}`.
pub async fn list(
    State(st): State<AdminState>,
    Path(name): Path<String>,
    q: Result<Query<DeadLetterQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad query", e.body_text()),
    };
    let queue = match queue_of(&st, &name) {
        Ok(q) => q.clone(),
        Err(r) => return *r,
    };
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let read = tokio::task::spawn_blocking(move || queue.dead_letters(q.after, limit)).await;
    match read {
        Ok(Ok(items)) => {
            let next = (items.len() == limit)
                .then(|| items.last().map(|(k, _)| *k))
                .flatten();
            let letters: Vec<serde_json::Value> = items
                .into_iter()
                .map(|(id, mut v)| {
                    if let Some(o) = v.as_object_mut() {
                        o.insert("id".into(), id.into());
                    }
                    v
                })
                .collect();
            Json(serde_json::json!({"sink": name, "dead_letters": letters, "next": next}))
                .into_response()
        }
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, "storage", e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

/// Removes every dead letter of the sink: `{"removed": N}`.
pub async fn purge(State(st): State<AdminState>, Path(name): Path<String>) -> Response {
    let queue = match queue_of(&st, &name) {
        Ok(q) => q.clone(),
        Err(r) => return *r,
    };
    match tokio::task::spawn_blocking(move || queue.purge_dead_letters()).await {
        Ok(Ok(n)) => {
            tracing::info!(sink = %name, removed = n, "dead letters purged through the admin API");
            Json(serde_json::json!({"sink": name, "removed": n})).into_response()
        }
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, "storage", e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}
