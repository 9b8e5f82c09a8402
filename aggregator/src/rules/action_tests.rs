//! Tests of actions: ordering, set/rename/remove, route, sampling, rate limits, notify
//! digests and threshold alerts.

use std::sync::Arc;
use std::time::Duration;

use logferry_shared::event::Level;

use super::config::rules_from_toml;
use super::tests::{access, ctx_with, engine, ev, s};
use super::*;
use crate::parse::Value;

#[test]
fn rules_run_in_order_and_drop_stops_evaluation() {
    let eng = engine(
        r#"
[[rules]]
name = "first"
actions = [{ type = "tag", tags = ["one"] }]
[[rules]]
name = "drop-debug"
when = { field = "level", lte = "debug" }
actions = [{ type = "drop" }, { type = "tag", tags = ["never"] }]
[[rules]]
name = "second"
when = { field = "tags", equals = "one" }
actions = [{ type = "tag", tags = ["two", "one"] }]
"#,
    );
    let mut e = ev(Some(Level::Info), "m", &[]);
    assert_eq!(eng.apply(&mut e), Verdict::Keep);
    let tags: Vec<&str> = e.tags.iter().map(|t| t.as_ref()).collect();
    assert_eq!(tags, ["one", "two"], "in order, no repeats");
    let mut d = ev(Some(Level::Debug), "m", &[]);
    assert_eq!(eng.apply(&mut d), Verdict::Drop);
    assert_eq!(d.tags.len(), 1, "actions after drop did not run");
    let stats = eng.stats();
    assert_eq!((stats[1].matched, stats[1].dropped), (1, 1));
    assert_eq!(stats[2].matched, 1);
}

#[test]
fn disabled_rules_do_not_run() {
    let eng =
        engine("[[rules]]\nname = \"off\"\nenabled = false\nactions = [{ type = \"drop\" }]\n");
    assert_eq!(eng.apply(&mut ev(None, "m", &[])), Verdict::Keep);
}

#[test]
fn set_rename_remove() {
    let eng = engine(
        r#"
[[rules]]
name = "enrich"
when = { field = "k8s.namespace", equals = "shop" }
actions = [
  { type = "set", field = "team", value = "payments" },
  { type = "set", field = "fields.priority", value = 2 },
  { type = "set", field = "level", value = "warning" },
  { type = "rename", from = "msg2", to = "detail" },
  { type = "rename", from = "absent", to = "x" },
  { type = "remove", fields = ["password", "fields.token", "nothing"] },
]
"#,
    );
    let mut e = ev(
        Some(Level::Info),
        "m",
        &[
            ("password", s("hunter2")),
            ("msg2", s("more")),
            ("token", s("t")),
            ("team", s("old")),
        ],
    );
    assert_eq!(eng.apply(&mut e), Verdict::Keep);
    assert_eq!(e.parsed.level, Some(Level::Warn));
    assert_eq!(e.field("team"), Some(&s("payments")), "replaced in place");
    assert_eq!(e.field("priority"), Some(&Value::Int(2)));
    assert_eq!(e.field("detail"), Some(&s("more")));
    assert!(e.field("msg2").is_none() && e.field("x").is_none());
    assert!(e.field("password").is_none() && e.field("token").is_none());
    let set_msg = engine("[[rules]]\nname = \"m\"\nactions = [{ type = \"set\", field = \"message\", value = \"hidden\" }, { type = \"remove\", fields = [\"level\"] }]\n");
    let mut e = ev(Some(Level::Error), "secret", &[]);
    set_msg.apply(&mut e);
    assert_eq!(e.parsed.message, "hidden");
    assert_eq!(e.parsed.level, None);
}

#[test]
fn route_restricts_sinks_and_routes_add_up() {
    let eng = engine(
        r#"
[[rules]]
name = "debug-to-debug-sink"
when = { field = "level", equals = "debug" }
actions = [{ type = "route", sinks = ["debug"] }]
[[rules]]
name = "errors-also-to-cloudwatch"
when = { field = "level", gte = "debug" }
actions = [{ type = "route", sinks = ["cloudwatch"] }]
"#,
    );
    let mut e = ev(Some(Level::Debug), "m", &[]);
    eng.apply(&mut e);
    assert!(!e.goes_to(0) && e.goes_to(1) && e.goes_to(2));
    let mut t = ev(Some(Level::Trace), "m", &[]);
    eng.apply(&mut t);
    assert_eq!(t.route, None);
    assert!(
        t.goes_to(0) && t.goes_to(1) && t.goes_to(2),
        "untouched: every sink"
    );
}

#[test]
fn sampling_by_counter_keeps_exactly_one_in_n() {
    let eng = engine("[[rules]]\nname = \"s\"\nactions = [{ type = \"sample\", one_in = 10 }]\n");
    let kept = (0..1000)
        .filter(|_| eng.apply(&mut ev(None, "m", &[])) == Verdict::Keep)
        .count();
    assert_eq!(kept, 100);
    assert_eq!(eng.stats()[0].dropped, 900);
}

#[test]
fn sampling_by_key_is_all_or_nothing_per_key() {
    let eng = engine("[[rules]]\nname = \"s\"\nactions = [{ type = \"sample\", one_in = 4, key = \"trace_id\" }]\n");
    let mut kept_keys = 0;
    for k in 0..400 {
        let id = format!("trace-{k}");
        let first = eng.apply(&mut ev(None, "m", &[("trace_id", s(&id))]));
        for _ in 0..5 {
            assert_eq!(
                eng.apply(&mut ev(None, "m", &[("trace_id", s(&id))])),
                first
            );
        }
        if first == Verdict::Keep {
            kept_keys += 1;
        }
    }
    assert!(
        (60..=140).contains(&kept_keys),
        "about a quarter: {kept_keys}"
    );
}

#[test]
fn rate_limit_per_key_refills_and_forgets_least_recent_keys() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let rules = rules_from_toml(
        "[[rules]]\nname = \"rl\"\nactions = [{ type = \"rate_limit\", per_second = 2.0, burst = 5, key = \"host_ip\", max_keys = 2 }]\n",
    )
    .unwrap();
    let eng = Engine::build(&rules, &ctx_with(clock.clone()), None).unwrap();
    let run = |ip: &str, n: usize| {
        (0..n)
            .filter(|_| eng.apply(&mut ev(None, "m", &[("host_ip", s(ip))])) == Verdict::Keep)
            .count()
    };
    assert_eq!(run("a", 10), 5, "burst");
    assert_eq!(run("b", 3), 3, "another key has its own bucket");
    clock.advance(Duration::from_millis(1500));
    assert_eq!(run("a", 10), 3, "2/s for 1.5 s refills 3");
    clock.advance(Duration::from_secs(100));
    assert_eq!(run("a", 10), 5, "refill is capped at the burst");
    // a and b are known; c evicts the least recently used (b), which starts full again.
    assert_eq!(run("b", 1), 1);
    assert_eq!(run("c", 5), 5);
    // a had no tokens left and no time passed: it is kept only because it was forgotten.
    assert_eq!(run("a", 1), 1);
    let stats = eng.stats();
    assert_eq!(stats[0].matched, 40);
    assert_eq!(stats[0].dropped, 17);
    // Without a key, one bucket for everything.
    let eng = engine(
        "[[rules]]\nname = \"rl\"\nactions = [{ type = \"rate_limit\", per_second = 1.0 }]\n",
    );
    let kept = (0..5)
        .filter(|_| eng.apply(&mut ev(None, "m", &[])) == Verdict::Keep)
        .count();
    assert_eq!(kept, 1);
}

#[test]
fn notify_sends_the_first_match_then_one_digest_per_interval() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let cx = ctx_with(clock.clone());
    let rules = rules_from_toml(
        "[[rules]]\nname = \"errors\"\nwhen = { field = \"level\", gte = \"error\" }\nactions = [{ type = \"redact\", patterns = [\"email\"] }, { type = \"notify\", notifier = \"oncall\", interval = \"1m\" }]\n",
    )
    .unwrap();
    let eng = Engine::build(&rules, &cx, None).unwrap();
    for i in 0..100_000u64 {
        if i % 1000 == 0 {
            clock.advance(Duration::from_millis(100));
        }
        eng.apply(&mut ev(
            Some(Level::Error),
            "login failed for bob@example.com",
            &[],
        ));
    }
    let first = cx.outbox.drain();
    assert_eq!(first.len(), 1, "a storm makes one notification");
    assert_eq!(first[0].kind, NotificationKind::Match);
    assert_eq!(first[0].notifier, "oncall");
    let sample = first[0].sample.as_ref().unwrap();
    assert_eq!(
        sample.message, "login failed for [REDACTED:email]",
        "redacted first"
    );
    eng.tick();
    assert!(cx.outbox.is_empty(), "interval not over");
    clock.advance(Duration::from_secs(60));
    eng.tick();
    let digest = cx.outbox.drain();
    assert_eq!(digest.len(), 1);
    assert_eq!(digest[0].kind, NotificationKind::Digest);
    assert_eq!(digest[0].count, 99_999, "every further match counted");
    assert!(
        digest[0].summary.contains("99999 more"),
        "{}",
        digest[0].summary
    );
    clock.advance(Duration::from_secs(600));
    eng.tick();
    assert!(cx.outbox.is_empty(), "nothing pending");
    eng.apply(&mut ev(Some(Level::Error), "again", &[]));
    assert_eq!(cx.outbox.drain()[0].kind, NotificationKind::Match);
}

#[test]
fn threshold_alert_fires_once_and_recovers_with_the_duration() {
    let clock = Arc::new(ManualClock::new(1_795_341_600_000));
    let cx = ctx_with(clock.clone());
    // More than 10 requests/s over 2 minutes.
    let rules = rules_from_toml(
        "[[rules]]\nname = \"high-traffic\"\nwhen = { field = \"format\", equals = \"access\" }\nactions = [{ type = \"alert\", notifier = \"oncall\", window = \"2m\", rate_above = 10.0 }]\n",
    )
    .unwrap();
    let eng = Engine::build(&rules, &cx, None).unwrap();
    // 8 requests/s for 3 minutes: below.
    for _ in 0..180 {
        for _ in 0..8 {
            eng.apply(&mut access(200, "/"));
        }
        clock.advance(Duration::from_secs(1));
        eng.tick();
    }
    assert!(cx.outbox.is_empty());
    // 20 requests/s: the 2-minute count passes 1200 after a while, fires once.
    let mut fired_at = None;
    for sec in 0..120 {
        for _ in 0..20 {
            eng.apply(&mut access(200, "/"));
        }
        if fired_at.is_none() && !cx.outbox.is_empty() {
            fired_at = Some(sec);
        }
        clock.advance(Duration::from_secs(1));
        eng.tick();
    }
    let notes = cx.outbox.drain();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].kind, NotificationKind::Firing);
    assert_eq!(notes[0].threshold, Some(1200));
    assert_eq!(notes[0].window_secs, Some(120));
    assert!(notes[0].count > 1200);
    assert!(
        notes[0].summary.starts_with("[FIRING] high-traffic: "),
        "{}",
        notes[0].summary
    );
    // 20/s for s seconds plus 8/s for the rest of the window passes 1200 when 12s > 240.
    assert_eq!(fired_at, Some(20));
    assert_eq!(eng.stats()[0].firing.len(), 1);
    // Traffic stops: the window drains; recovery comes from tick alone.
    let mut recovered = Vec::new();
    for _ in 0..180 {
        clock.advance(Duration::from_secs(1));
        eng.tick();
        recovered.extend(cx.outbox.drain());
    }
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    let r = &recovered[0];
    assert_eq!(r.kind, NotificationKind::Recovered);
    assert!(r.count <= 1200);
    let d = r.duration_secs.unwrap();
    // It fired 100 s before traffic stopped; the 2-minute count then fell by 20 each
    // second from 2400 to 1200 in 60 s.
    assert!((158..=162).contains(&d), "fired for {d}s");
    assert!(r.summary.contains("after firing for"), "{}", r.summary);
    assert!(eng.stats()[0].firing.is_empty());
}

#[test]
fn grouped_alerts_fire_per_group_and_bound_the_groups() {
    let clock = Arc::new(ManualClock::new(1_795_341_600_000));
    let cx = ctx_with(clock.clone());
    let rules = rules_from_toml(
        "[[rules]]\nname = \"5xx\"\nwhen = { field = \"status\", gte = 500 }\nactions = [{ type = \"alert\", notifier = \"team\", window = \"1m\", above = 5, group_by = \"path\", max_groups = 3 }]\n",
    )
    .unwrap();
    let eng = Engine::build(&rules, &cx, None).unwrap();
    for _ in 0..6 {
        eng.apply(&mut access(503, "/a"));
        eng.apply(&mut access(503, "/b"));
        eng.apply(&mut access(200, "/c"));
    }
    let mut notes = cx.outbox.drain();
    notes.sort_by(|a, b| a.group.cmp(&b.group));
    assert_eq!(notes.len(), 2);
    assert_eq!(notes[0].group.as_deref(), Some("/a"));
    assert_eq!(notes[1].group.as_deref(), Some("/b"));
    assert!(
        notes[0].summary.starts_with("[FIRING] 5xx (/a)"),
        "{}",
        notes[0].summary
    );
    // Many more paths: at most 3 groups, the rest in (other).
    for i in 0..50 {
        eng.apply(&mut access(500, &format!("/p{i}")));
    }
    let firing = eng.stats()[0].firing.clone();
    let groups: Vec<&str> = firing.iter().map(|(g, _)| g.as_str()).collect();
    assert_eq!(
        groups,
        ["(other)", "/a", "/b"],
        "/p0 got the third group, below threshold"
    );
    let other = cx.outbox.drain();
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].group.as_deref(), Some("(other)"));
    assert_eq!(other[0].count, 6);
    clock.advance(Duration::from_secs(61));
    eng.tick();
    let rec = cx.outbox.drain();
    assert_eq!(rec.len(), 3, "{rec:?}");
    assert!(rec.iter().all(|n| n.kind == NotificationKind::Recovered));
    assert!(eng.stats()[0].firing.is_empty());
}

#[test]
fn apply_at_uses_the_time_given_not_the_clock() {
    let eng = engine(
        "[[rules]]\nname = \"rl\"\nactions = [{ type = \"rate_limit\", per_second = 1.0 }]\n",
    );
    let t0 = 5_000_000;
    assert_eq!(eng.apply_at(&mut ev(None, "m", &[]), t0), Verdict::Keep);
    assert_eq!(
        eng.apply_at(&mut ev(None, "m", &[]), t0 + 500),
        Verdict::Drop
    );
    assert_eq!(
        eng.apply_at(&mut ev(None, "m", &[]), t0 + 1000),
        Verdict::Keep
    );
}
