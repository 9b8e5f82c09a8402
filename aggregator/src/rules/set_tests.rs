//! Tests of rule sets: changes, validation, persistence and atomic swaps.

use std::sync::Arc;

use super::config::rules_from_toml;
use super::tests::{ctx, ev};
use super::*;
use crate::parse::Value;

fn rule(name: &str, when_level: &str) -> RuleConfig {
    rules_from_toml(&format!(
        "[[rules]]\nname = \"{name}\"\nwhen = {{ field = \"level\", gte = \"{when_level}\" }}\nactions = [{{ type = \"tag\", tags = [\"{name}\"] }}]\n"
    ))
    .unwrap()
    .remove(0)
}

#[test]
fn add_replace_delete_list_and_validation() {
    let set = RuleSet::open(&[rule("a", "warn")], None, ctx()).unwrap();
    assert_eq!(set.origin(), Origin::Config);
    assert_eq!(set.add(rule("b", "error"), None).unwrap(), 1);
    assert_eq!(set.add(rule("first", "trace"), Some(0)).unwrap(), 0);
    let names: Vec<String> = set.list().into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["first", "a", "b"]);
    assert!(matches!(set.add(rule("a", "info"), None), Err(RuleError::Duplicate(n)) if n == "a"));
    set.replace("a", rule("a", "fatal")).unwrap();
    assert_eq!(set.get("a").unwrap(), rule("a", "fatal"));
    assert!(matches!(
        set.replace("zz", rule("zz", "info")),
        Err(RuleError::NotFound(_))
    ));
    assert!(matches!(
        set.replace("a", rule("b", "info")),
        Err(RuleError::Duplicate(_))
    ));
    let mut bad = rule("bad", "info");
    bad.when.as_mut().unwrap().gte = Some(Literal::Str("loud".into()));
    let err = set.add(bad, None).unwrap_err().to_string();
    assert!(err.starts_with("rule `bad`: when.gte"), "{err}");
    assert_eq!(set.list().len(), 3, "a refused change changes nothing");
    assert_eq!(set.delete("first").unwrap().name, "first");
    assert!(matches!(set.delete("first"), Err(RuleError::NotFound(_))));
    assert_eq!(set.origin(), Origin::Persisted { generation: 4 });
}

#[test]
fn persisted_rules_win_over_the_config_after_a_change_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = vec![rule("from-config", "warn")];
    {
        let store = RuleStore::open(dir.path()).unwrap();
        let set = RuleSet::open(&config, Some(store), ctx()).unwrap();
        assert_eq!(set.origin(), Origin::Config);
        set.add(rule("added", "error"), None).unwrap();
        set.delete("from-config").unwrap();
    }
    {
        let store = RuleStore::open(dir.path()).unwrap();
        let set = RuleSet::open(&config, Some(store), ctx()).unwrap();
        assert_eq!(set.origin(), Origin::Persisted { generation: 2 });
        let names: Vec<String> = set.list().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["added"]);
        set.reset_to(&config).unwrap();
        assert_eq!(set.list(), config);
    }
    let store = RuleStore::open(dir.path()).unwrap();
    let set = RuleSet::open(&config, Some(store), ctx()).unwrap();
    assert_eq!(set.origin(), Origin::Config, "reset forgot the stored set");
}

#[test]
fn every_action_kind_round_trips_through_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_from_toml(
        r#"
[[rules]]
name = "all-kinds"
description = "every action"
when = { any = [{ field = "status", in = [500, "502", 2.5, true] }, { not = { field = "x", exists = true } }] }
actions = [
  { type = "sample", one_in = 3, key = "trace" },
  { type = "rate_limit", per_second = 1.5, burst = 3, key = "host" },
  { type = "set", field = "a", value = 1.25 },
  { type = "rename", from = "a", to = "b" },
  { type = "remove", fields = ["b"] },
  { type = "tag", tags = ["t"] },
  { type = "redact", patterns = ["all"], regex = "secret-\\d+", name = "secret", fields = ["message"] },
  { type = "route", sinks = ["archive"] },
  { type = "notify", notifier = "team", interval = "5m" },
  { type = "alert", notifier = "oncall", window = "2m", rate_above = 10.0, group_by = "host" },
  { type = "drop" },
]
"#,
    )
    .unwrap();
    let set = RuleSet::open(&[], Some(RuleStore::open(dir.path()).unwrap()), ctx()).unwrap();
    set.replace_all(rules.clone()).unwrap();
    drop(set);
    let set = RuleSet::open(&[], Some(RuleStore::open(dir.path()).unwrap()), ctx()).unwrap();
    assert_eq!(set.list(), rules);
}

#[test]
fn an_unknown_store_version_is_an_error_not_an_empty_set() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let tree = db.open_tree("rules").unwrap();
        tree.insert(b"ruleset", vec![9u8, b'{', b'}']).unwrap();
        tree.flush().unwrap();
    }
    let err = RuleSet::open(&[], Some(RuleStore::open(dir.path()).unwrap()), ctx()).unwrap_err();
    assert!(err.to_string().contains("format version 9"), "{err}");
}

#[test]
fn stored_rules_that_no_longer_compile_stop_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let routed = rules_from_toml(
        "[[rules]]\nname = \"r\"\nactions = [{ type = \"route\", sinks = [\"debug\"] }]\n",
    )
    .unwrap();
    let set = RuleSet::open(&[], Some(RuleStore::open(dir.path()).unwrap()), ctx()).unwrap();
    set.replace_all(routed).unwrap();
    drop(set);
    let mut cx = ctx();
    cx.sinks.retain(|s| s != "debug");
    let err = RuleSet::open(&[], Some(RuleStore::open(dir.path()).unwrap()), cx).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("no longer load") && msg.contains("no sink named `debug`"),
        "{msg}"
    );
}

#[test]
fn unchanged_rules_keep_their_state_across_changes() {
    let set = RuleSet::open(
        &rules_from_toml(
            "[[rules]]\nname = \"s\"\nactions = [{ type = \"sample\", one_in = 2 }]\n",
        )
        .unwrap(),
        None,
        ctx(),
    )
    .unwrap();
    let eng = set.engine();
    assert_eq!(eng.apply(&mut ev(None, "m", &[])), Verdict::Keep);
    set.add(rule("other", "info"), None).unwrap();
    let eng2 = set.engine();
    assert_eq!(
        eng2.apply(&mut ev(None, "m", &[])),
        Verdict::Drop,
        "counter continued"
    );
    assert_eq!(eng2.stats()[0].matched, 2);
}

#[test]
fn swaps_are_atomic_for_concurrent_readers() {
    // Every engine version holds rules v0..vN all tagging with the version number: a
    // reader must always see a complete version (N tags, all the same number).
    let make = |v: usize| -> Vec<RuleConfig> {
        (0..5)
            .map(|i| {
                rules_from_toml(&format!(
                    "[[rules]]\nname = \"r{i}\"\nactions = [{{ type = \"tag\", tags = [\"v{v}\"] }}, {{ type = \"set\", field = \"r{i}\", value = {v} }}]\n"
                ))
                .unwrap()
                .remove(0)
            })
            .collect()
    };
    let set = Arc::new(RuleSet::open(&make(0), None, ctx()).unwrap());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let set = set.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut seen = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let eng = set.engine();
                    let mut e = ev(None, "m", &[]);
                    eng.apply(&mut e);
                    assert_eq!(e.tags.len(), 1);
                    let v: i64 = e.tags[0][1..].parse().unwrap();
                    for i in 0..5 {
                        assert_eq!(e.field(&format!("r{i}")), Some(&Value::Int(v)));
                    }
                    seen += 1;
                }
                seen
            })
        })
        .collect();
    for v in 1..200 {
        set.replace_all(make(v)).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    assert!(set.list()[0].actions[0] == make(199)[0].actions[0]);
}
