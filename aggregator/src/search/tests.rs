//! The store's behaviour: every filter, pagination under appends, limits, concurrent
//! queries; and the helpers the other test files share. Retention, reopening and damaged
//! segments are in `durability_tests.rs`; `model_tests.rs` checks random mixes.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use logferry_shared::event::Level;

use super::*;
use crate::rules::ManualClock;

pub(super) const T0: i64 = 1_795_341_600_000;

/// An event owned by a test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Ev {
    pub ts: i64,
    pub level: Option<Level>,
    pub host: String,
    pub source: String,
    pub namespace: Option<String>,
    pub line: String,
}

impl Ev {
    pub fn new(ts: i64, level: Option<Level>, host: &str, ns: Option<&str>, msg: &str) -> Ev {
        let source = match ns {
            Some(ns) => format!("/var/log/pods/{ns}_app-1_uid/app/0.log"),
            None => "/var/log/syslog".to_owned(),
        };
        let mut v = serde_json::json!({
            "timestamp": ts,
            "message": msg,
            "host": host,
            "source": {"type": "file", "path": source},
        });
        if let Some(l) = level {
            v["level"] = l.as_str().into();
        }
        if let Some(ns) = ns {
            v["k8s"] = serde_json::json!({ "namespace": ns });
        }
        Ev {
            ts,
            level,
            host: host.to_owned(),
            source,
            namespace: ns.map(str::to_owned),
            line: v.to_string(),
        }
    }

    pub fn as_new(&self) -> NewEvent<'_> {
        NewEvent {
            timestamp_ms: self.ts,
            level: self.level,
            host: &self.host,
            source: &self.source,
            namespace: self.namespace.as_deref(),
            line: self.line.as_bytes(),
        }
    }
}

pub(super) fn settings(block_events: usize) -> StoreSettings {
    StoreSettings {
        max_bytes: 1 << 30,
        max_age: Duration::from_secs(3600),
        block_events,
        block_bytes: 1 << 20,
        compression_level: 1,
    }
}

pub(super) fn open(dir: &Path, s: StoreSettings, clock: &Arc<ManualClock>) -> EventStore {
    EventStore::open(dir, s, clock.clone()).unwrap()
}

pub(super) fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(T0 as u64))
}

fn lines(page: &Page) -> Vec<String> {
    page.lines
        .iter()
        .map(|l| String::from_utf8(l.clone()).unwrap())
        .collect()
}

/// Every page of `q`, walked to the end.
pub(super) fn walk(store: &EventStore, q: &Query) -> Vec<String> {
    let mut q = q.clone();
    let mut out = Vec::new();
    for _ in 0..100_000 {
        let page = store.search(&q).unwrap();
        assert!(page.lines.len() <= q.limit);
        out.extend(lines(&page));
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => return out,
        }
    }
    panic!("pagination does not end");
}

/// The lines of `evs` (appended in this order) that `keep` accepts, newest first.
pub(super) fn expected(evs: &[Ev], keep: impl Fn(&Ev) -> bool) -> Vec<String> {
    let mut v: Vec<(i64, usize, &Ev)> = evs
        .iter()
        .enumerate()
        .filter(|(_, e)| keep(e))
        .map(|(i, e)| (e.ts, i, e))
        .collect();
    v.sort_by_key(|h| std::cmp::Reverse((h.0, h.1)));
    v.into_iter().map(|(_, _, e)| e.line.clone()).collect()
}

/// 60 events over three hosts, three namespaces (and none), every level and none, with
/// timestamps not in arrival order.
pub(super) fn corpus() -> Vec<Ev> {
    let levels = [
        None,
        Some(Level::Trace),
        Some(Level::Debug),
        Some(Level::Info),
        Some(Level::Warn),
        Some(Level::Error),
        Some(Level::Fatal),
    ];
    let namespaces = [Some("shop"), Some("payments"), None, Some("shop-eu")];
    (0..60)
        .map(|i| {
            let ts = T0 + (i * 7 % 60) * 1000;
            let msg = match i % 5 {
                0 => format!("DB \"Timeout\" after {i}ms"),
                1 => format!("order {i} processed"),
                2 => format!("payment {i} declined: card expired"),
                3 => "health check ok".to_owned(),
                _ => format!("cache miss for key user:{i}"),
            };
            Ev::new(
                ts,
                levels[i as usize % 7],
                ["node-1", "node-2", "node-3"][i as usize % 3],
                namespaces[i as usize % 4],
                &msg,
            )
        })
        .collect()
}

pub(super) fn filled(dir: &Path, block_events: usize) -> (EventStore, Vec<Ev>) {
    let evs = corpus();
    let store = open(dir, settings(block_events), &clock());
    for chunk in evs.chunks(9) {
        store.append(chunk.iter().map(Ev::as_new));
    }
    (store, evs)
}

pub(super) fn q() -> Query {
    Query {
        limit: 1000,
        ..Query::default()
    }
}

#[test]
fn every_filter_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (store, evs) = filled(dir.path(), 4);
    let all = walk(&store, &q());
    assert_eq!(all, expected(&evs, |_| true));
    type Keep = Box<dyn Fn(&Ev) -> bool>;
    let cases: Vec<(Query, Keep)> = vec![
        (
            Query {
                levels: LevelSet::at_least(Level::Warn),
                ..q()
            },
            Box::new(|e| e.level.is_some_and(|l| l >= Level::Warn)),
        ),
        (
            Query {
                levels: LevelSet::only(Level::Info),
                ..q()
            },
            Box::new(|e| e.level == Some(Level::Info)),
        ),
        (
            Query {
                host: Some("node-2".into()),
                ..q()
            },
            Box::new(|e| e.host == "node-2"),
        ),
        (
            Query {
                namespace: Some("shop".into()),
                ..q()
            },
            Box::new(|e| e.namespace.as_deref() == Some("shop")),
        ),
        (
            Query {
                source: Some("/var/log/pods/shop".into()),
                ..q()
            },
            Box::new(|e| e.source.starts_with("/var/log/pods/shop")),
        ),
        (
            Query {
                source: Some("/var/log/syslog".into()),
                ..q()
            },
            Box::new(|e| e.namespace.is_none()),
        ),
        (
            Query {
                text: Some("db \"timeout\"".into()),
                ..q()
            },
            Box::new(|e| e.line.contains("DB \\\"Timeout\\\"")),
        ),
        (
            Query {
                text: Some("CARD".into()),
                ..q()
            },
            Box::new(|e| e.line.contains("card")),
        ),
        (
            Query {
                since_ms: Some(T0 + 20_000),
                ..q()
            },
            Box::new(|e| e.ts >= T0 + 20_000),
        ),
        (
            Query {
                until_ms: Some(T0 + 20_000),
                ..q()
            },
            Box::new(|e| e.ts < T0 + 20_000),
        ),
    ];
    for (i, (query, keep)) in cases.iter().enumerate() {
        let want = expected(&evs, keep);
        assert!(!want.is_empty() && want.len() < evs.len(), "case {i}");
        assert_eq!(walk(&store, query), want, "case {i}: {query:?}");
    }
    let nobody = Query {
        host: Some("node-9".into()),
        ..q()
    };
    assert_eq!(store.search(&nobody).unwrap(), Page::default());
}

#[test]
fn combined_filters() {
    let dir = tempfile::tempdir().unwrap();
    let (store, evs) = filled(dir.path(), 4);
    let query = Query {
        text: Some("order".into()),
        levels: LevelSet::at_least(Level::Trace),
        namespace: Some("shop".into()),
        host: Some("node-1".into()),
        source: Some("/var/log/pods/".into()),
        since_ms: Some(T0 + 5_000),
        until_ms: Some(T0 + 55_000),
        ..q()
    };
    let keep = |e: &Ev| {
        e.line.contains("order")
            && e.level.is_some()
            && e.namespace.as_deref() == Some("shop")
            && e.host == "node-1"
            && (T0 + 5_000..T0 + 55_000).contains(&e.ts)
    };
    let want = expected(&evs, keep);
    assert_eq!(want.len(), 1);
    assert_eq!(walk(&store, &query), want);
    let loose = Query {
        host: None,
        text: None,
        ..query
    };
    let want_loose = expected(&evs, |e| {
        e.level.is_some()
            && e.namespace.as_deref() == Some("shop")
            && (T0 + 5_000..T0 + 55_000).contains(&e.ts)
    });
    assert!(want_loose.len() > want.len());
    assert_eq!(walk(&store, &loose), want_loose);
}

#[test]
fn pages_walk_every_event_once_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let (store, evs) = filled(dir.path(), 4);
    for limit in [1, 7, 59, 60, 61] {
        let query = Query { limit, ..q() };
        assert_eq!(
            walk(&store, &query),
            expected(&evs, |_| true),
            "limit {limit}"
        );
    }
    let first = store.search(&Query { limit: 60, ..q() }).unwrap();
    assert_eq!(first.next_cursor, None, "no more events: no cursor");
    let bad = Query {
        cursor: Some("nope".into()),
        ..q()
    };
    assert_eq!(store.search(&bad), Err(QueryError::InvalidCursor));
}

#[test]
fn pages_do_not_shift_while_events_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let (store, evs) = filled(dir.path(), 4);
    let mut query = Query { limit: 7, ..q() };
    let mut seen = Vec::new();
    let mut added = Vec::new();
    for round in 0.. {
        let page = store.search(&query).unwrap();
        seen.extend(lines(&page));
        // Newer events, and events older than anything: neither may move the pages.
        let batch = [
            Ev::new(
                T0 + 100_000 + round,
                Some(Level::Error),
                "node-1",
                None,
                "new",
            ),
            Ev::new(
                T0 - 100_000 - round,
                Some(Level::Error),
                "node-1",
                None,
                "old",
            ),
        ];
        store.append(batch.iter().map(Ev::as_new));
        added.extend(batch);
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => break,
        }
    }
    let old_ones: Vec<String> = added
        .iter()
        .filter(|e| e.ts < T0)
        .map(|e| e.line.clone())
        .collect();
    // Every original event once, in order, then the old arrivals (they sort after every
    // original event, so the walk reaches them); no new arrival shows up.
    let (originals, tail) = seen.split_at(evs.len());
    assert_eq!(originals, expected(&evs, |_| true));
    let mut want_tail = expected(&added, |e| e.ts < T0);
    want_tail.retain(|l| tail.contains(l));
    assert_eq!(tail, want_tail);
    assert!(!tail.is_empty() && tail.len() <= old_ones.len());
    let mut dedup = seen.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), seen.len(), "no event twice");
}

#[test]
fn open_and_sealed_blocks_are_both_searched() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), settings(4), &clock());
    let evs: Vec<Ev> = (0..10)
        .map(|i| Ev::new(T0 + i, Some(Level::Info), "h", Some("ns"), &format!("e{i}")))
        .collect();
    store.append(evs.iter().map(Ev::as_new));
    let stats = store.stats();
    assert_eq!(
        (stats.events, stats.blocks),
        (10, 2),
        "two sealed, two open"
    );
    assert_eq!(walk(&store, &q()), expected(&evs, |_| true));
    store.flush();
    assert_eq!(store.stats().blocks, 3);
    assert_eq!(walk(&store, &q()), expected(&evs, |_| true));
}

#[test]
fn lines_and_names_too_long_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), settings(4), &clock());
    let long_line = "x".repeat(MAX_LINE_BYTES + 1);
    let long_host = "h".repeat(MAX_NAME_BYTES + 1);
    let ok = Ev::new(T0, None, "h", None, "fine");
    store.append([
        NewEvent {
            line: long_line.as_bytes(),
            ..ok.as_new()
        },
        NewEvent {
            host: &long_host,
            ..ok.as_new()
        },
        ok.as_new(),
    ]);
    let stats = store.stats();
    assert_eq!(
        (stats.appended_total, stats.skipped_total, stats.events),
        (1, 2, 1)
    );
    assert_eq!(walk(&store, &q()), vec![ok.line]);
}

#[test]
fn limits_are_clamped() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = filled(dir.path(), 4);
    let zero = store.search(&Query { limit: 0, ..q() }).unwrap();
    assert_eq!(zero.lines.len(), 1);
    assert!(zero.next_cursor.is_some());
    let huge = store
        .search(&Query {
            limit: usize::MAX,
            ..q()
        })
        .unwrap();
    assert_eq!(huge.lines.len(), 60);
}

#[test]
fn queries_run_while_events_are_appended() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path(), settings(64), &clock()));
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for b in 0..200i64 {
                let batch: Vec<Ev> = (0..50)
                    .map(|i| Ev::new(T0 + b * 50 + i, Some(Level::Info), "h", None, "x"))
                    .collect();
                store.append(batch.iter().map(Ev::as_new));
            }
        })
    };
    let mut last_total = 0;
    while !writer.is_finished() {
        let page = store.search(&Query { limit: 50, ..q() }).unwrap();
        // A page is always a run of consecutive events, newest first.
        let ts: Vec<i64> = page
            .lines
            .iter()
            .map(|l| {
                serde_json::from_slice::<serde_json::Value>(l).unwrap()["timestamp"]
                    .as_i64()
                    .unwrap()
            })
            .collect();
        assert!(ts.windows(2).all(|w| w[0] == w[1] + 1), "{ts:?}");
        let total = store.stats().events;
        assert!(total >= last_total);
        last_total = total;
    }
    writer.join().unwrap();
    assert_eq!(walk(&store, &q()).len(), 10_000);
    assert_eq!(store.stats().events, 10_000);
}
