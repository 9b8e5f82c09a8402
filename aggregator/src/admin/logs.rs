//! `GET /api/logs`: search of recent events in the local store
//! ([`crate::search::EventStore`]), newest first, a page at a time.
//!
//! Query: `q` (text the event's JSON line contains, ASCII case ignored), `level` (that
//! level or above), `source` (a prefix of `source.path`), `host`, `namespace` (exact),
//! `since` / `until` (RFC 3339, milliseconds since the epoch, or a duration ago such as
//! `15m`; `since` inclusive, `until` exclusive), `limit` (1–1000, default 100), `cursor`
//! (from the previous page's `next_cursor`). Answer: `{"events": [...], "next_cursor":
//! "..." | null}`, each event exactly as the file sink wrote it.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use logferry_shared::event::Timestamp;
use serde::Deserialize;

use super::AdminState;
use crate::http::error;
use crate::search::{LevelSet, QueryError, DEFAULT_LIMIT, MAX_LIMIT};

/// The query string of `/api/logs`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    /// Text.
    pub q: Option<String>,
    /// Minimum level.
    pub level: Option<String>,
    /// Source path prefix.
    pub source: Option<String>,
    /// Host.
    pub host: Option<String>,
    /// Namespace.
    pub namespace: Option<String>,
    /// From (inclusive).
    pub since: Option<String>,
    /// To (exclusive).
    pub until: Option<String>,
    /// Page size.
    pub limit: Option<usize>,
    /// Next page.
    pub cursor: Option<String>,
}

/// A time bound: RFC 3339, epoch milliseconds, or a duration before `now_ms`.
pub fn parse_time(key: &str, v: &str, now_ms: i64) -> Result<i64, String> {
    let v = v.trim();
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(t) = serde_json::from_value::<Timestamp>(serde_json::Value::String(v.to_owned())) {
        return Ok(t.as_millis());
    }
    if let Ok(d) = humantime::parse_duration(v) {
        return Ok(now_ms.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)));
    }
    Err(format!(
        "{key}: `{v}` is not an RFC 3339 time, epoch milliseconds or a duration ago (15m)"
    ))
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

/// The store's query for `q`.
pub fn to_query(q: LogsQuery, now_ms: i64) -> Result<crate::search::Query, String> {
    let levels = match q.level.as_deref().filter(|l| !l.is_empty()) {
        None => LevelSet::ALL,
        Some(l) => LevelSet::at_least(
            crate::parse::level::from_word(l)
                .ok_or_else(|| format!("level: unknown level `{l}`"))?,
        ),
    };
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(format!("limit: must be between 1 and {MAX_LIMIT}"));
    }
    let time = |key: &str, v: Option<String>| {
        non_empty(v)
            .map(|v| parse_time(key, &v, now_ms))
            .transpose()
    };
    Ok(crate::search::Query {
        text: non_empty(q.q),
        levels,
        source: non_empty(q.source),
        host: non_empty(q.host),
        namespace: non_empty(q.namespace),
        since_ms: time("since", q.since)?,
        until_ms: time("until", q.until)?,
        limit,
        cursor: non_empty(q.cursor),
    })
}

/// `GET /api/logs`.
pub async fn logs(
    State(st): State<AdminState>,
    q: Result<Query<LogsQuery>, QueryRejection>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad query", e.body_text()),
    };
    let query = match to_query(q, Timestamp::now().as_millis()) {
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
    let page = match tokio::task::spawn_blocking(move || store.search(&query)).await {
        Ok(Ok(page)) => page,
        Ok(Err(QueryError::InvalidCursor)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad query",
                "cursor: invalid cursor",
            )
        }
        Err(e) => {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_millis_or_durations_ago() {
        let now = 1_795_341_600_000;
        assert_eq!(
            parse_time("since", "1795341599000", now),
            Ok(1_795_341_599_000)
        );
        assert_eq!(
            parse_time("since", "2026-11-22T10:00:00.500Z", now),
            Ok(1_795_341_600_500)
        );
        assert_eq!(parse_time("since", "15m", now), Ok(now - 900_000));
        let err = parse_time("until", "yesterday-ish", now).unwrap_err();
        assert!(err.starts_with("until:"), "{err}");
    }

    #[test]
    fn queries_are_checked_and_named() {
        let q = to_query(
            LogsQuery {
                level: Some("WARNING".into()),
                limit: Some(5),
                q: Some(String::new()),
                ..Default::default()
            },
            0,
        )
        .unwrap();
        assert_eq!(
            q.levels,
            LevelSet::at_least(logferry_shared::event::Level::Warn)
        );
        assert_eq!((q.limit, q.text), (5, None));
        for (bad, key) in [
            (
                LogsQuery {
                    level: Some("loud".into()),
                    ..Default::default()
                },
                "level",
            ),
            (
                LogsQuery {
                    limit: Some(0),
                    ..Default::default()
                },
                "limit",
            ),
            (
                LogsQuery {
                    limit: Some(MAX_LIMIT + 1),
                    ..Default::default()
                },
                "limit",
            ),
            (
                LogsQuery {
                    since: Some("x".into()),
                    ..Default::default()
                },
                "since",
            ),
        ] {
            let err = to_query(bad, 0).unwrap_err();
            assert!(err.starts_with(key), "{err}");
        }
    }
}
