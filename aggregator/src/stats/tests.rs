use std::time::Duration;

use logferry_shared::event::Level;

use super::*;

const T0: u64 = 1_795_341_600_000; // a multiple of 10 s

fn obs<'a>(
    level: Option<Level>,
    source: &'a str,
    host: &'a str,
    ns: Option<&'a str>,
) -> Observation<'a> {
    Observation {
        level,
        source,
        host,
        namespace: ns,
        request: None,
    }
}

fn req(status: u16, path: &str) -> Observation<'_> {
    Observation {
        level: Some(Level::Info),
        source: "/var/log/nginx/access.log",
        host: "web-1",
        namespace: None,
        request: Some(Request {
            status,
            path: Some(path),
        }),
    }
}

#[test]
fn sections_are_the_first_path_segment() {
    assert_eq!(section("/api/orders?page=2"), "/api");
    assert_eq!(section("/api"), "/api");
    assert_eq!(section("/"), "/");
    assert_eq!(section(""), "/");
    assert_eq!(section("/?q=1"), "/");
    assert_eq!(section("/static/app.js"), "/static");
    assert_eq!(section("*"), "*");
    assert_eq!(section("api.example:443"), "api.example:443");
}

#[test]
fn counts_by_level_source_host_and_namespace_per_interval() {
    let mut s = TrafficStats::new(StatsSettings::default());
    for _ in 0..3 {
        s.record(
            T0 + 1000,
            &obs(Some(Level::Error), "/a.log", "n1", Some("shop")),
            1,
        );
    }
    s.record(T0 + 2000, &obs(None, "/b.log", "n2", None), 5);
    s.record(
        T0 + 9999,
        &obs(Some(Level::Info), "/a.log", "", Some("kube-system")),
        2,
    );
    // Next interval.
    s.record(
        T0 + 10_000,
        &obs(Some(Level::Warn), "/c.log", "n1", None),
        1,
    );
    let snap = s.snapshot(T0 + 15_000, None);
    assert_eq!(snap.interval_secs, 10);
    assert_eq!(snap.intervals.len(), 2);
    let i = &snap.intervals[0];
    assert_eq!(i.start.as_millis() as u64, T0);
    assert_eq!(i.events, 10);
    assert_eq!(i.events_per_sec, 1.0);
    assert_eq!((i.levels.error, i.levels.info, i.levels.unknown), (3, 2, 5));
    assert_eq!(
        i.top_sources,
        vec![
            Count {
                key: "/a.log".into(),
                count: 5
            },
            Count {
                key: "/b.log".into(),
                count: 5
            }
        ]
    );
    assert_eq!(
        i.top_hosts[0],
        Count {
            key: "n2".into(),
            count: 5
        }
    );
    assert_eq!(
        i.top_hosts[1],
        Count {
            key: "n1".into(),
            count: 3
        }
    );
    assert_eq!(i.top_namespaces.len(), 2);
    assert!(i.access.is_none());
    let open = &snap.intervals[1];
    assert_eq!((open.events, open.seconds), (1, 5.0));
    assert_eq!(snap.total.events, 11);
    assert_eq!(snap.total.levels.warn, 1);
    assert_eq!(
        snap.total.top_sources[0],
        Count {
            key: "/a.log".into(),
            count: 5
        }
    );
}

#[test]
fn access_logs_give_rates_sections_and_status_class_percentages() {
    let mut s = TrafficStats::new(StatsSettings::default());
    for i in 0..100u16 {
        let (status, path) = match i % 10 {
            0 => (500, "/api/pay"),
            1 | 2 => (404, "/static/x.png"),
            3 => (301, "/"),
            _ => (200, "/api/orders?id=1"),
        };
        s.record(T0 + u64::from(i) * 10, &req(status, path), 1);
    }
    let snap = s.snapshot(T0 + 10_000, Some(2));
    assert_eq!(
        snap.intervals.len(),
        2,
        "the closed interval and the new open one"
    );
    let a = snap.intervals[0].access.as_ref().unwrap();
    assert_eq!(a.requests, 100);
    assert_eq!(a.requests_per_sec, 10.0);
    assert_eq!(a.status_classes, [0, 60, 10, 20, 10]);
    assert_eq!(a.status_class_percent, [0.0, 60.0, 10.0, 20.0, 10.0]);
    assert_eq!(
        a.top_sections[0],
        Count {
            key: "/api".into(),
            count: 70
        }
    );
    assert_eq!(
        a.top_sections[1],
        Count {
            key: "/static".into(),
            count: 20
        }
    );
    assert_eq!(
        a.top_sections[2],
        Count {
            key: "/".into(),
            count: 10
        }
    );
    let json = serde_json::to_value(&snap).unwrap();
    assert_eq!(json["intervals"][0]["access"]["requests"], 100);
}

#[test]
fn cardinality_and_history_are_bounded() {
    let settings = StatsSettings {
        interval: Duration::from_secs(10),
        keep: 5,
        max_keys: 20,
        top: 3,
    };
    let mut s = TrafficStats::new(settings);
    for i in 0..100 {
        let host = format!("h{i}");
        s.record(T0, &obs(None, "/a", &host, None), 1);
    }
    s.record(T0, &obs(None, "/a", "h0", None), 10);
    let snap = s.snapshot(T0 + 1000, None);
    let i = &snap.intervals[0];
    assert_eq!(i.top_hosts.len(), 3);
    assert_eq!(
        i.top_hosts[0],
        Count {
            key: "h0".into(),
            count: 11
        }
    );
    let listed: u64 = i.top_hosts.iter().map(|c| c.count).sum();
    assert_eq!(
        listed + i.other_hosts,
        110,
        "nothing lost: the rest is other"
    );
    // An hour later: only `keep` intervals, quiet ones included as empty.
    s.record(T0 + 3_600_000, &obs(None, "/a", "h", None), 1);
    let snap = s.snapshot(T0 + 3_600_000, None);
    assert_eq!(snap.intervals.len(), 6, "5 closed and the open one");
    assert!(snap.intervals[..5].iter().all(|i| i.events == 0));
    let starts: Vec<u64> = snap
        .intervals
        .iter()
        .map(|i| i.start.as_millis() as u64)
        .collect();
    for w in starts.windows(2) {
        assert_eq!(w[1] - w[0], 10_000, "contiguous");
    }
}

#[test]
fn quiet_gaps_show_as_empty_intervals() {
    let mut s = TrafficStats::new(StatsSettings::default());
    s.record(T0, &obs(None, "/a", "h", None), 4);
    s.record(T0 + 30_000, &obs(None, "/a", "h", None), 2);
    let snap = s.snapshot(T0 + 31_000, None);
    let events: Vec<u64> = snap.intervals.iter().map(|i| i.events).collect();
    assert_eq!(events, [4, 0, 0, 2]);
    assert_eq!(snap.total.events, 6);
}

#[test]
fn observation_reads_a_rule_event() {
    let parsed = crate::parse::Parsed {
        timestamp: None,
        level: Some(Level::Warn),
        message: "GET /x HTTP/1.1".into(),
        fields: vec![
            ("status".into(), crate::parse::Value::Int(404)),
            ("path".into(), crate::parse::Value::Str("/x/y".into())),
        ],
    };
    let ev = RuleEvent::new(
        parsed,
        "access",
        "web-1",
        "/var/log/nginx/access.log",
        crate::rules::K8sRef {
            namespace: Some("edge"),
            ..Default::default()
        },
    );
    let o = Observation::of(&ev);
    assert_eq!(
        o.request,
        Some(Request {
            status: 404,
            path: Some("/x/y")
        })
    );
    assert_eq!(
        (o.host, o.namespace, o.level),
        ("web-1", Some("edge"), Some(Level::Warn))
    );
}

#[test]
fn a_batch_tally_counts_exactly_as_event_by_event() {
    // Few keys allowed, so which keys get a slot and which go to `other` depends on the
    // order in which they first appear.
    let settings = StatsSettings {
        max_keys: 3,
        ..StatsSettings::default()
    };
    let sources = [
        ("/a.log", Some("shop")),
        ("/b.log", None),
        ("/c.log", Some("prod")),
        ("/d.log", Some("shop")),
        ("/e.log", Some("kube")),
        ("/f.log", Some("dev")),
    ];
    let levels = [
        None,
        Some(Level::Info),
        Some(Level::Error),
        Some(Level::Debug),
    ];
    let paths = ["/api/x", "/static/y", "/", "/a/b", "/b", "/c/d?q"];
    let events: Vec<(usize, Option<Level>, Option<Request<'_>>)> = (0..200usize)
        .map(|i| {
            let src = (i % 13 * 7 + i / 17) % sources.len();
            let request = (i % 3 == 0).then(|| Request {
                status: [200, 304, 404, 503, 99][i % 5],
                path: (i % 4 != 0).then_some(paths[i % paths.len()]),
            });
            (src, levels[i % levels.len()], request)
        })
        .collect();
    for host in ["web-1", ""] {
        let mut one_by_one = TrafficStats::new(settings);
        let mut batched = TrafficStats::new(settings);
        for chunk in events.chunks(50) {
            // Sources of one batch may come from different hosts (syslog peers).
            let host_of = |i: usize| {
                if i % 3 == 2 && !host.is_empty() {
                    "web-2"
                } else {
                    host
                }
            };
            let keys = sources
                .iter()
                .enumerate()
                .map(|(i, &(path, namespace))| SourceKeys {
                    path,
                    namespace,
                    host: host_of(i),
                })
                .collect();
            let mut tally = batched.tally(T0 + 500, keys);
            for &(src, level, request) in chunk {
                tally.add(src, level, request);
                let (source, namespace) = sources[src];
                let obs = Observation {
                    level,
                    source,
                    host: host_of(src),
                    namespace,
                    request,
                };
                one_by_one.record(T0 + 500, &obs, 1);
            }
            tally.finish();
        }
        let (a, b) = (
            one_by_one.snapshot(T0 + 9_000, None),
            batched.snapshot(T0 + 9_000, None),
        );
        assert_eq!(a.total.levels, b.total.levels);
        assert_eq!(a.total.access, b.total.access);
        assert_eq!(a.total.top_hosts, b.total.top_hosts);
        assert_eq!(a.total.top_sources, b.total.top_sources);
        assert_eq!(a.total.other_sources, b.total.other_sources);
        assert_eq!(a.total.top_namespaces, b.total.top_namespaces);
        assert_eq!(a.total.other_namespaces, b.total.other_namespaces);
    }
}
