//! The filters of `GET /api/logs` and `GET /api/tail`: one query-string type
//! ([`EventQuery`]) read and checked in one place, so both endpoints take the same keys
//! and mean the same thing by them.
//!
//! Filters (all optional, combined with AND, an empty value does not filter): `q` (text
//! the event's JSON line contains, ignoring ASCII case, matched as the line is escaped),
//! `level` (that level or above; events without a level never match it), `source` (a
//! prefix of `source.path`), `host` and `namespace` (exact). `/api/logs` also takes
//! `since` / `until` (RFC 3339, milliseconds since the epoch, or a duration ago such as
//! `15m`), `limit` (1–1000, default 100) and `cursor`; a live tail has no time range or
//! pages, and refuses those keys by name. Every error names its key (`level: unknown
//! level `loud``).

use logferry_shared::event::Timestamp;
use serde::Deserialize;

use crate::search::{LevelSet, Query, TextFilter, DEFAULT_LIMIT, MAX_LIMIT};

/// The query string of `/api/logs` and `/api/tail`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
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
    /// From (inclusive); search only.
    pub since: Option<String>,
    /// To (exclusive); search only.
    pub until: Option<String>,
    /// Page size; search only.
    pub limit: Option<usize>,
    /// Next page; search only.
    pub cursor: Option<String>,
}

/// The filters both endpoints share, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilters {
    /// Text the line contains; `None`: no filter.
    pub text: Option<String>,
    /// Levels kept.
    pub levels: LevelSet,
    /// Source path prefix.
    pub source: Option<String>,
    /// Host, exactly.
    pub host: Option<String>,
    /// Namespace, exactly.
    pub namespace: Option<String>,
}

impl EventFilters {
    /// The text filter ready to run, if any.
    pub fn text_filter(&self) -> Option<TextFilter> {
        self.text.as_deref().and_then(TextFilter::new)
    }
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
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

impl EventQuery {
    /// The shared filters, checked; the search-only keys are left in `self`.
    fn take_filters(&mut self) -> Result<EventFilters, String> {
        let levels = match non_empty(self.level.take()) {
            None => LevelSet::ALL,
            Some(l) => LevelSet::at_least(
                crate::parse::level::from_word(&l)
                    .ok_or_else(|| format!("level: unknown level `{l}`"))?,
            ),
        };
        Ok(EventFilters {
            text: non_empty(self.q.take()),
            levels,
            source: non_empty(self.source.take()),
            host: non_empty(self.host.take()),
            namespace: non_empty(self.namespace.take()),
        })
    }

    /// The search store's query (`/api/logs`); `now_ms` anchors durations ago.
    pub fn into_search(mut self, now_ms: i64) -> Result<Query, String> {
        let f = self.take_filters()?;
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(format!("limit: must be between 1 and {MAX_LIMIT}"));
        }
        let time = |key: &str, v: Option<String>| {
            non_empty(v)
                .map(|v| parse_time(key, &v, now_ms))
                .transpose()
        };
        Ok(Query {
            text: f.text,
            levels: f.levels,
            source: f.source,
            host: f.host,
            namespace: f.namespace,
            since_ms: time("since", self.since)?,
            until_ms: time("until", self.until)?,
            limit,
            cursor: non_empty(self.cursor),
        })
    }

    /// The filters of a live tail (`/api/tail`), which refuses the search-only keys.
    pub fn into_tail(mut self) -> Result<EventFilters, String> {
        let f = self.take_filters()?;
        for (key, given) in [
            ("since", non_empty(self.since).is_some()),
            ("until", non_empty(self.until).is_some()),
            ("limit", self.limit.is_some()),
            ("cursor", non_empty(self.cursor).is_some()),
        ] {
            if given {
                return Err(format!(
                    "{key}: a live tail streams events as they arrive; `{key}` is for /api/logs"
                ));
            }
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logferry_shared::event::Level;

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
    fn search_queries_are_checked_and_named() {
        let q = EventQuery {
            level: Some("WARNING".into()),
            limit: Some(5),
            q: Some(String::new()),
            host: Some("h".into()),
            ..Default::default()
        }
        .into_search(0)
        .unwrap();
        assert_eq!(q.levels, LevelSet::at_least(Level::Warn));
        assert_eq!((q.limit, q.text, q.host.as_deref()), (5, None, Some("h")));
        for (bad, key) in [
            (
                EventQuery {
                    level: Some("loud".into()),
                    ..Default::default()
                },
                "level",
            ),
            (
                EventQuery {
                    limit: Some(0),
                    ..Default::default()
                },
                "limit",
            ),
            (
                EventQuery {
                    limit: Some(MAX_LIMIT + 1),
                    ..Default::default()
                },
                "limit",
            ),
            (
                EventQuery {
                    since: Some("x".into()),
                    ..Default::default()
                },
                "since",
            ),
        ] {
            let err = bad.into_search(0).unwrap_err();
            assert!(err.starts_with(key), "{err}");
        }
    }

    /// The same keys give the same filters to both endpoints.
    #[test]
    fn tail_and_search_read_the_filters_alike() {
        let q = || EventQuery {
            q: Some("DB \"down\"".into()),
            level: Some("error".into()),
            source: Some("/var/log/pods/shop_".into()),
            host: Some(String::new()),
            namespace: Some("shop".into()),
            ..Default::default()
        };
        let tail = q().into_tail().unwrap();
        let search = q().into_search(0).unwrap();
        assert_eq!(
            tail,
            EventFilters {
                text: search.text,
                levels: search.levels,
                source: search.source,
                host: search.host,
                namespace: search.namespace,
            }
        );
        assert_eq!(tail.levels, LevelSet::at_least(Level::Error));
        assert_eq!(tail.host, None, "empty does not filter");
        let err = EventQuery {
            level: Some("loud".into()),
            ..Default::default()
        }
        .into_tail()
        .unwrap_err();
        assert!(err.starts_with("level:"), "{err}");
        for (bad, key) in [
            (
                EventQuery {
                    since: Some("15m".into()),
                    ..Default::default()
                },
                "since",
            ),
            (
                EventQuery {
                    until: Some("0".into()),
                    ..Default::default()
                },
                "until",
            ),
            (
                EventQuery {
                    limit: Some(5),
                    ..Default::default()
                },
                "limit",
            ),
            (
                EventQuery {
                    cursor: Some("c1".into()),
                    ..Default::default()
                },
                "cursor",
            ),
        ] {
            let err = bad.into_tail().unwrap_err();
            assert!(err.starts_with(key), "{err}");
        }
    }
}
