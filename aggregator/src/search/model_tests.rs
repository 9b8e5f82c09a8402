//! The store against a model: random appends, flushes, reopenings and queries, with the
//! model a plain list filtered and sorted on every query. Every page of every query is
//! walked and must equal the model's answer.

use std::sync::Arc;

use logferry_shared::event::Level;
use proptest::prelude::*;

use super::tests::{open, settings, Ev, T0};
use super::*;
use crate::rules::ManualClock;

const LEVELS: [Option<Level>; 7] = [
    None,
    Some(Level::Trace),
    Some(Level::Debug),
    Some(Level::Info),
    Some(Level::Warn),
    Some(Level::Error),
    Some(Level::Fatal),
];
const HOSTS: [&str; 4] = ["node-1", "node-2", "NODE-1", "node-10"];
const NAMESPACES: [Option<&str>; 4] = [None, Some("shop"), Some("shop-eu"), Some("pay")];
const WORDS: [&str; 6] = [
    "timeout",
    "Timeout after 5s",
    "say \"hi\"",
    "tab\there",
    "café",
    "ok",
];
/// Texts to search for; `}{` and `0}{` only occur across two lines, never within one.
const TEXTS: [&str; 11] = [
    "timeout", "TIMEOUT", "\"hi\"", "tab\th", "caf", "é", "ok", "message", "nowhere", "}{", "0}{",
];
const SOURCES: [&str; 4] = [
    "/var/log/pods/shop",
    "/var/log/pods/shop-eu_app-1_uid/app/0.log",
    "/var/log/",
    "/nowhere",
];

#[derive(Debug, Clone)]
struct EvSpec {
    ts: i64,
    level: usize,
    host: usize,
    ns: usize,
    word: usize,
}

#[derive(Debug, Clone)]
enum LevelSpec {
    All,
    AtLeast(usize),
    Only(usize),
}

#[derive(Debug, Clone)]
struct QSpec {
    text: Option<usize>,
    level: LevelSpec,
    host: Option<usize>,
    ns: Option<usize>,
    source: Option<usize>,
    since: Option<i64>,
    until: Option<i64>,
    limit: usize,
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<EvSpec>),
    Flush,
    Reopen,
    Query(QSpec),
}

fn ev_spec() -> impl Strategy<Value = EvSpec> {
    (0i64..20, 0..7usize, 0..4usize, 0..4usize, 0..6usize).prop_map(
        |(ts, level, host, ns, word)| EvSpec {
            ts,
            level,
            host,
            ns,
            word,
        },
    )
}

fn q_spec() -> impl Strategy<Value = QSpec> {
    let level = prop_oneof![
        Just(LevelSpec::All),
        (1..7usize).prop_map(LevelSpec::AtLeast),
        (1..7usize).prop_map(LevelSpec::Only),
    ];
    (
        proptest::option::of(0..TEXTS.len()),
        level,
        proptest::option::of(0..4usize),
        proptest::option::of(1..4usize),
        proptest::option::of(0..SOURCES.len()),
        proptest::option::of(0i64..20),
        proptest::option::of(0i64..21),
        1..12usize,
    )
        .prop_map(
            |(text, level, host, ns, source, since, until, limit)| QSpec {
                text,
                level,
                host,
                ns,
                source,
                since,
                until,
                limit,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::collection::vec(ev_spec(), 1..30).prop_map(Op::Append),
        1 => Just(Op::Flush),
        1 => Just(Op::Reopen),
        4 => q_spec().prop_map(Op::Query),
    ]
}

fn event(s: &EvSpec, n: usize) -> Ev {
    let msg = format!("{} #{n}", WORDS[s.word]);
    Ev::new(
        T0 + s.ts,
        LEVELS[s.level],
        HOSTS[s.host],
        NAMESPACES[s.ns],
        &msg,
    )
}

fn query(s: &QSpec) -> Query {
    Query {
        text: s.text.map(|t| TEXTS[t].to_owned()),
        levels: match s.level {
            LevelSpec::All => LevelSet::ALL,
            LevelSpec::AtLeast(l) => LevelSet::at_least(LEVELS[l].unwrap_or(Level::Trace)),
            LevelSpec::Only(l) => LevelSet::only(LEVELS[l].unwrap_or(Level::Trace)),
        },
        host: s.host.map(|h| HOSTS[h].to_owned()),
        namespace: s.ns.and_then(|n| NAMESPACES[n]).map(str::to_owned),
        source: s.source.map(|p| SOURCES[p].to_owned()),
        since_ms: s.since.map(|t| T0 + t),
        until_ms: s.until.map(|t| T0 + t),
        limit: s.limit,
        cursor: None,
    }
}

/// The model's answer: a plain filter over every event, sorted newest first.
fn model(events: &[Ev], s: &QSpec) -> Vec<String> {
    let text = s.text.map(|t| {
        let quoted = serde_json::to_string(TEXTS[t]).unwrap();
        quoted[1..quoted.len() - 1].to_ascii_lowercase()
    });
    let level_ok = |l: Option<Level>| match (&s.level, l) {
        (LevelSpec::All, _) => true,
        (_, None) => false,
        (LevelSpec::AtLeast(w), Some(l)) => Some(l) >= LEVELS[*w],
        (LevelSpec::Only(w), Some(l)) => Some(l) == LEVELS[*w],
    };
    let mut hits: Vec<(i64, usize, &Ev)> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            text.as_ref()
                .is_none_or(|t| e.line.to_ascii_lowercase().contains(t.as_str()))
                && level_ok(e.level)
                && s.host.is_none_or(|h| e.host == HOSTS[h])
                && s.ns.is_none_or(|n| e.namespace.as_deref() == NAMESPACES[n])
                && s.source.is_none_or(|p| e.source.starts_with(SOURCES[p]))
                && s.since.is_none_or(|t| e.ts >= T0 + t)
                && s.until.is_none_or(|t| e.ts < T0 + t)
        })
        .map(|(i, e)| (e.ts, i, e))
        .collect();
    hits.sort_by_key(|h| std::cmp::Reverse((h.0, h.1)));
    hits.into_iter().map(|(_, _, e)| e.line.clone()).collect()
}

fn walk(store: &EventStore, mut q: Query) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..10_000 {
        let page = store.search(&q).unwrap();
        assert!(page.lines.len() <= q.limit);
        assert!(page.next_cursor.is_none() || page.lines.len() == q.limit);
        out.extend(
            page.lines
                .into_iter()
                .map(|l| String::from_utf8(l).unwrap()),
        );
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => return out,
        }
    }
    panic!("pagination does not end");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn store_agrees_with_a_list(
        ops in proptest::collection::vec(op(), 1..25),
        block_events in 1..8usize,
        compressed in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(T0 as u64));
        let s = StoreSettings {
            compression_level: i32::from(compressed),
            ..settings(block_events)
        };
        let mut store = open(dir.path(), s, &clock);
        let mut events: Vec<Ev> = Vec::new();
        for op in ops {
            match op {
                Op::Append(specs) => {
                    let batch: Vec<Ev> = specs
                        .iter()
                        .enumerate()
                        .map(|(i, sp)| event(sp, events.len() + i))
                        .collect();
                    store.append(batch.iter().map(Ev::as_new));
                    events.extend(batch);
                }
                Op::Flush => store.flush(),
                Op::Reopen => {
                    drop(store);
                    store = open(dir.path(), s, &clock);
                }
                Op::Query(qs) => {
                    prop_assert_eq!(walk(&store, query(&qs)), model(&events, &qs), "{:?}", qs);
                }
            }
        }
        prop_assert_eq!(store.stats().events, events.len() as u64);
    }
}

/// Pieces of messages and needles for the text model: ASCII letters in both cases,
/// letters that ASCII case folding leaves alone, characters that JSON escapes, digits and
/// braces (which meet across two lines).
const PIECES: [&str; 16] = [
    "a", "b", "ab", "A", "B", "zeb", "ZEB", "é", "É", "ß", "\"", "\\", "\t", "0", "}{", " ",
];

#[derive(Debug, Clone)]
enum NeedleSpec {
    /// Pieces joined: often found nowhere.
    Pieces(Vec<usize>),
    /// A piece of a stored message: which event, where, how many characters, and which of
    /// them change their ASCII case.
    Taken {
        event: proptest::sample::Index,
        start: proptest::sample::Index,
        chars: usize,
        flips: Vec<bool>,
    },
}

#[derive(Debug, Clone)]
enum TextOp {
    Append(Vec<(i64, Vec<usize>)>),
    Flush,
    Reopen,
    Query(NeedleSpec, usize),
}

fn needle_spec() -> impl Strategy<Value = NeedleSpec> {
    prop_oneof![
        proptest::collection::vec(0..PIECES.len(), 1..5).prop_map(NeedleSpec::Pieces),
        (
            any::<proptest::sample::Index>(),
            any::<proptest::sample::Index>(),
            1..12usize,
            proptest::collection::vec(any::<bool>(), 12),
        )
            .prop_map(|(event, start, chars, flips)| NeedleSpec::Taken {
                event,
                start,
                chars,
                flips,
            }),
    ]
}

fn text_op() -> impl Strategy<Value = TextOp> {
    let message = proptest::collection::vec(0..PIECES.len(), 0..12);
    prop_oneof![
        4 => proptest::collection::vec((0i64..20, message), 1..20).prop_map(TextOp::Append),
        1 => Just(TextOp::Flush),
        1 => Just(TextOp::Reopen),
        5 => (needle_spec(), 1..8usize).prop_map(|(n, limit)| TextOp::Query(n, limit)),
    ]
}

fn needle(spec: &NeedleSpec, messages: &[String]) -> String {
    match spec {
        NeedleSpec::Pieces(p) => p.iter().map(|&i| PIECES[i]).collect(),
        NeedleSpec::Taken {
            event,
            start,
            chars,
            flips,
        } => {
            let Some(m) = (!messages.is_empty()).then(|| &messages[event.index(messages.len())])
            else {
                return "a".to_owned();
            };
            let all: Vec<char> = m.chars().collect();
            let from = start.index(all.len().max(1));
            all.iter()
                .skip(from)
                .take(*chars)
                .zip(flips.iter().cycle())
                .map(|(&c, &flip)| match (flip, c.is_ascii_lowercase()) {
                    (false, _) => c,
                    (true, true) => c.to_ascii_uppercase(),
                    (true, false) => c.to_ascii_lowercase(),
                })
                .collect()
        }
    }
}

/// The model's answer to a text query: the lines that contain the JSON-escaped needle,
/// ignoring ASCII case, newest first.
fn text_model(events: &[Ev], text: &str) -> Vec<String> {
    let quoted = serde_json::to_string(text).unwrap();
    let escaped = quoted[1..quoted.len() - 1].to_ascii_lowercase();
    let mut hits: Vec<(i64, usize, &Ev)> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.line.to_ascii_lowercase().contains(&escaped))
        .map(|(i, e)| (e.ts, i, e))
        .collect();
    hits.sort_by_key(|h| std::cmp::Reverse((h.0, h.1)));
    hits.into_iter().map(|(_, _, e)| e.line.clone()).collect()
}

/// Text queries against the model, with needles taken from stored messages (case
/// changed at random), made of pieces found nowhere, and of one or two bytes: the blocks'
/// text filters must never hide a match. Across all cases the filters must also have
/// skipped blocks, so the comparison covers them.
#[test]
fn text_filters_never_hide_a_match() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let skipped = AtomicU64::new(0);
    let queries = AtomicU64::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    });
    let cases = (
        proptest::collection::vec(text_op(), 1..30),
        1..6usize,
        any::<bool>(),
    );
    let result = runner.run(&cases, |(ops, block_events, compressed)| {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(T0 as u64));
        let s = StoreSettings {
            compression_level: i32::from(compressed),
            ..settings(block_events)
        };
        let mut store = open(dir.path(), s, &clock);
        let (mut events, mut messages) = (Vec::<Ev>::new(), Vec::<String>::new());
        for op in ops {
            match op {
                TextOp::Append(specs) => {
                    let batch: Vec<Ev> = specs
                        .iter()
                        .map(|(ts, pieces)| {
                            let m: String = pieces.iter().map(|&i| PIECES[i]).collect();
                            messages.push(m.clone());
                            Ev::new(T0 + ts, Some(Level::Info), "node-1", None, &m)
                        })
                        .collect();
                    store.append(batch.iter().map(Ev::as_new));
                    events.extend(batch);
                }
                TextOp::Flush => store.flush(),
                TextOp::Reopen => {
                    skipped.fetch_add(store.stats().text_skipped_blocks_total, Ordering::Relaxed);
                    drop(store);
                    store = open(dir.path(), s, &clock);
                }
                TextOp::Query(spec, limit) => {
                    let text = needle(&spec, &messages);
                    let q = Query {
                        text: Some(text.clone()),
                        limit,
                        ..Query::default()
                    };
                    queries.fetch_add(1, Ordering::Relaxed);
                    prop_assert_eq!(walk(&store, q), text_model(&events, &text), "{:?}", text);
                }
            }
        }
        skipped.fetch_add(store.stats().text_skipped_blocks_total, Ordering::Relaxed);
        prop_assert_eq!(store.stats().damaged_blocks_total, 0);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (skipped, queries) = (skipped.into_inner(), queries.into_inner());
    assert!(queries > 100, "{queries} queries");
    assert!(skipped > 0, "no block was skipped by its text filter");
}
