//! `GET /api/logs`: search of recent events in the local store
//! ([`crate::search::EventStore`]), newest first, a page at a time.
//!
//! Query: the filters of [`super::query`] (`q`, `level`, `source`, `host`, `namespace`),
//! `since` / `until` (`since` inclusive, `until` exclusive), `limit` (1–1000, default
//! 100) and `cursor` (from the previous page's `next_cursor`). Answer: `{"events": [...], "next_cursor":
//! "..." | null}`, each event exactly as the file sink wrote it.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use logferry_shared::event::Timestamp;

use super::background::{RunError, SEARCH_QUEUE, SEARCH_THREADS};
use super::query::EventQuery;
use super::AdminState;
use crate::http::error;
use crate::search::QueryError;

/// `GET /api/logs`.
pub async fn logs(
    State(st): State<AdminState>,
    q: Result<Query<EventQuery>, QueryRejection>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad query", e.body_text()),
    };
    let query = match q.into_search(Timestamp::now().as_millis()) {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad query", e),
    };
    let Some(store) = st.search.clone() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "search unavailable",
            "log search is disabled ([search] enabled = false) or its store could not be opened",
        );
    };
    // On the search threads, below ingest and the pipeline in CPU priority.
    let page = match st.searches.run(move || store.search(&query)).await {
        Ok(Ok(page)) => page,
        Ok(Err(QueryError::InvalidCursor)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad query",
                "cursor: invalid cursor",
            )
        }
        Err(RunError::Busy) => {
            let mut resp = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "search busy",
                format!(
                    "{SEARCH_THREADS} searches are running and {SEARCH_QUEUE} waiting; try again"
                ),
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            return resp;
        }
        Err(e @ RunError::Failed) => {
            tracing::error!(error = %e, "log search failed");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
                "the search did not complete",
            );
        }
    };
    // The stored lines are the JSON the renderer wrote: copied in as they are.
    let mut body = Vec::with_capacity(page.lines.iter().map(|l| l.len() + 1).sum::<usize>() + 64);
    body.extend_from_slice(b"{\"events\":[");
    for (i, line) in page.lines.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(line);
    }
    body.extend_from_slice(b"],\"next_cursor\":");
    match &page.next_cursor {
        Some(c) => {
            body.extend_from_slice(serde_json::Value::String(c.clone()).to_string().as_bytes())
        }
        None => body.extend_from_slice(b"null"),
    }
    body.push(b'}');
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
