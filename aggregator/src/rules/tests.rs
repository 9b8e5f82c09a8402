//! Tests of conditions and rule errors, and the helpers the other rule tests share.
//! Actions are tested in `action_tests.rs`, rule sets in `set_tests.rs`, redaction
//! patterns in `redact_tests.rs`.

use std::borrow::Cow;
use std::sync::Arc;

use logferry_shared::event::Level;

use super::config::rules_from_toml;
use super::*;
use crate::parse::{Parsed, Value};

pub(crate) fn ctx_with(clock: Arc<dyn Clock>) -> EngineContext {
    EngineContext {
        sinks: vec!["archive".into(), "cloudwatch".into(), "debug".into()],
        notifiers: vec!["oncall".into(), "team".into()],
        clock,
        outbox: Arc::new(Outbox::new(1000)),
    }
}

pub(crate) fn ctx() -> EngineContext {
    ctx_with(Arc::new(ManualClock::new(1_795_341_600_000)))
}

pub(super) fn engine(toml: &str) -> Engine {
    try_engine(toml).unwrap()
}

fn try_engine(toml: &str) -> Result<Engine, String> {
    let rules = rules_from_toml(toml)?;
    Engine::build(&rules, &ctx(), None).map_err(|e| e.to_string())
}

/// A JSON-ish event: message, level, fields.
pub(super) fn ev<'a>(
    level: Option<Level>,
    message: &'a str,
    fields: &[(&'a str, Value<'a>)],
) -> RuleEvent<'a> {
    let parsed = Parsed {
        timestamp: None,
        level,
        message: Cow::Borrowed(message),
        fields: fields
            .iter()
            .map(|(k, v)| (Cow::Borrowed(*k), v.clone()))
            .collect(),
    };
    RuleEvent::new(
        parsed,
        "json",
        "node-1",
        "/var/log/pods/shop_api-7d9_u1/api/0.log",
        K8sRef {
            namespace: Some("shop"),
            pod: Some("api-7d9"),
            container: Some("api"),
        },
    )
}

pub(super) fn s(v: &str) -> Value<'_> {
    Value::Str(Cow::Borrowed(v))
}

pub(super) fn access<'a>(status: i64, path: &'a str) -> RuleEvent<'a> {
    let level = if status >= 500 {
        Level::Error
    } else if status >= 400 {
        Level::Warn
    } else {
        Level::Info
    };
    let mut e = ev(
        Some(level),
        "GET / HTTP/1.1",
        &[
            ("client_ip", s("203.0.113.7")),
            ("method", s("GET")),
            ("path", s(path)),
            ("status", Value::Int(status)),
            ("bytes", Value::Int(512)),
            ("duration", Value::Float(0.25)),
        ],
    );
    e.format = "access";
    e
}

/// Does a one-condition rule match?
fn when(cond: &str, e: &RuleEvent<'_>) -> bool {
    let eng = engine(&format!(
        "[[rules]]\nname = \"t\"\nwhen = {cond}\nactions = [{{ type = \"drop\" }}]\n"
    ));
    let mut e = e.clone();
    eng.apply(&mut e) == Verdict::Drop
}

// ---------- conditions ----------

#[test]
fn equals_and_not_equals_on_every_kind_of_field() {
    let e = access(503, "/api/orders?page=2");
    assert!(when(r#"{ field = "method", equals = "GET" }"#, &e));
    assert!(when(r#"{ field = "fields.method", equals = "GET" }"#, &e));
    assert!(!when(r#"{ field = "method", equals = "get" }"#, &e));
    assert!(when(r#"{ field = "status", equals = 503 }"#, &e));
    assert!(when(r#"{ field = "status", equals = "503" }"#, &e));
    assert!(when(r#"{ field = "duration", equals = 0.25 }"#, &e));
    assert!(when(r#"{ field = "level", equals = "ERROR" }"#, &e));
    assert!(when(r#"{ field = "level", equals = "err" }"#, &e));
    assert!(when(r#"{ field = "host", equals = "node-1" }"#, &e));
    assert!(when(r#"{ field = "format", equals = "access" }"#, &e));
    assert!(when(r#"{ field = "k8s.namespace", equals = "shop" }"#, &e));
    assert!(when(r#"{ field = "k8s.pod", equals = "api-7d9" }"#, &e));
    assert!(when(r#"{ field = "k8s.container", equals = "api" }"#, &e));
    assert!(when(
        r#"{ field = "source.path", ends_with = "/0.log" }"#,
        &e
    ));
    assert!(when(
        r#"{ field = "message", equals = "GET / HTTP/1.1" }"#,
        &e
    ));
    assert!(when(r#"{ field = "status", not_equals = 200 }"#, &e));
    assert!(!when(r#"{ field = "status", not_equals = 503 }"#, &e));
    // not_equals needs the field: an absent field is neither equal nor not equal.
    assert!(!when(r#"{ field = "missing", not_equals = "x" }"#, &e));
    let b = ev(None, "m", &[("ok", Value::Bool(true)), ("n", Value::Null)]);
    assert!(when(r#"{ field = "ok", equals = true }"#, &b));
    assert!(when(r#"{ field = "ok", equals = "true" }"#, &b));
    assert!(when(r#"{ field = "n", equals = "null" }"#, &b));
}

#[test]
fn in_list_contains_starts_ends_regex() {
    let e = access(404, "/api/orders?page=2");
    assert!(when(r#"{ field = "status", in = [401, 403, 404] }"#, &e));
    assert!(!when(r#"{ field = "status", in = [500, 502] }"#, &e));
    assert!(when(r#"{ field = "method", in = ["POST", "GET"] }"#, &e));
    assert!(when(r#"{ field = "level", in = ["warn", "error"] }"#, &e));
    assert!(when(r#"{ field = "path", contains = "orders" }"#, &e));
    assert!(!when(r#"{ field = "path", contains = "users" }"#, &e));
    assert!(when(r#"{ field = "path", starts_with = "/api/" }"#, &e));
    assert!(when(r#"{ field = "status", starts_with = "4" }"#, &e));
    assert!(when(r#"{ field = "path", ends_with = "page=2" }"#, &e));
    assert!(when(
        r#"{ field = "path", regex = '^/api/[a-z]+\?page=\d+$' }"#,
        &e
    ));
    assert!(when(r#"{ field = "method", regex = "(?i)^get$" }"#, &e));
    assert!(!when(r#"{ field = "path", regex = "^/static" }"#, &e));
    assert!(!when(r#"{ field = "missing", contains = "" }"#, &e));
}

#[test]
fn numeric_and_level_comparisons() {
    let e = access(503, "/x");
    assert!(when(r#"{ field = "status", gte = 500 }"#, &e));
    assert!(when(r#"{ field = "status", gt = 502 }"#, &e));
    assert!(!when(r#"{ field = "status", gt = 503 }"#, &e));
    assert!(when(r#"{ field = "status", lte = 503 }"#, &e));
    assert!(!when(r#"{ field = "status", lt = 503 }"#, &e));
    assert!(when(r#"{ field = "duration", gt = 0.2 }"#, &e));
    assert!(when(r#"{ field = "duration", lt = 1 }"#, &e));
    let t = ev(None, "m", &[("took_ms", s("1500.5")), ("name", s("abc"))]);
    assert!(
        when(r#"{ field = "took_ms", gt = 1000 }"#, &t),
        "numeric text compares"
    );
    assert!(
        !when(r#"{ field = "name", gt = 0 }"#, &t),
        "text that is no number"
    );
    for (lvl, warn_or_more) in [
        (Level::Trace, false),
        (Level::Debug, false),
        (Level::Info, false),
        (Level::Warn, true),
        (Level::Error, true),
        (Level::Fatal, true),
    ] {
        let e = ev(Some(lvl), "m", &[]);
        assert_eq!(
            when(r#"{ field = "level", gte = "warn" }"#, &e),
            warn_or_more,
            "{lvl:?}"
        );
        assert_eq!(
            when(r#"{ field = "level", lt = "WARNING" }"#, &e),
            !warn_or_more,
            "{lvl:?}"
        );
    }
    assert!(
        !when(r#"{ field = "level", gte = "trace" }"#, &ev(None, "m", &[])),
        "no level"
    );
}

#[test]
fn exists_and_combinators() {
    let e = access(200, "/healthz");
    assert!(when(r#"{ field = "status", exists = true }"#, &e));
    assert!(!when(r#"{ field = "user", exists = true }"#, &e));
    assert!(when(r#"{ field = "user", exists = false }"#, &e));
    assert!(when(r#"{ field = "tags", exists = false }"#, &e));
    assert!(when(
        r#"{ all = [{ field = "path", equals = "/healthz" }, { field = "status", lt = 400 }] }"#,
        &e
    ));
    assert!(!when(
        r#"{ all = [{ field = "path", equals = "/healthz" }, { field = "status", gte = 400 }] }"#,
        &e
    ));
    assert!(when(
        r#"{ any = [{ field = "status", gte = 500 }, { field = "path", starts_with = "/health" }] }"#,
        &e
    ));
    assert!(!when(r#"{ any = [] }"#, &e));
    assert!(when(r#"{ all = [] }"#, &e));
    assert!(when(r#"{ not = { field = "status", gte = 400 } }"#, &e));
    assert!(when(
        r#"{ not = { any = [{ field = "level", gte = "warn" }, { field = "method", equals = "POST" }] } }"#,
        &e
    ));
}

#[test]
fn tags_are_tested_as_a_set() {
    let eng = engine(
        r#"
[[rules]]
name = "tag"
actions = [{ type = "tag", tags = ["pci", "critical"] }]
[[rules]]
name = "drop-pci"
when = { field = "tags", equals = "pci" }
actions = [{ type = "drop" }]
"#,
    );
    let mut e = ev(None, "m", &[]);
    assert_eq!(eng.apply(&mut e), Verdict::Drop);
}

// ---------- errors ----------

#[test]
fn a_bad_rule_is_refused_naming_the_rule_and_the_key() {
    let cases = [
        (
            r#"when = { field = "path", regex = "([a-z" }"#,
            "rule `bad`: when.regex: invalid regex",
        ),
        (
            r#"when = { field = "status", gte = "high" }"#,
            "rule `bad`: when.gte: expects a number",
        ),
        (
            r#"when = { field = "level", gte = "loud" }"#,
            "rule `bad`: when.gte: `level` compares with a level",
        ),
        (
            r#"when = { field = "level", equals = "loud" }"#,
            "rule `bad`: when.equals: `loud` is not a level",
        ),
        (
            r#"when = { field = "a", equals = 1, contains = "x" }"#,
            "rule `bad`: when: one operator per condition, found equals, contains",
        ),
        (r#"when = { field = "a" }"#, "rule `bad`: when: no operator"),
        (
            r#"when = { equals = 1 }"#,
            "rule `bad`: when.field: `equals` needs a `field`",
        ),
        (
            r#"when = { all = [{ field = "x", exists = true }, { field = "k8s.node", exists = true }] }"#,
            "rule `bad`: when.all[1].field: unknown field `k8s.node`",
        ),
        (
            r#"when = { not = { field = "a", regex = "(" } }"#,
            "rule `bad`: when.not.regex: invalid regex",
        ),
    ];
    for (when, want) in cases {
        let text =
            format!("[[rules]]\nname = \"bad\"\n{when}\nactions = [{{ type = \"drop\" }}]\n");
        let err = try_engine(&text).unwrap_err();
        assert!(err.starts_with(want), "{err}\n  wanted: {want}");
    }
    let actions = [
        (r#"{ type = "route", sinks = ["s3"] }"#, "rule `bad`: actions[0].sinks[0]: no sink named `s3` (configured: archive, cloudwatch, debug)"),
        (r#"{ type = "notify", notifier = "pager" }"#, "rule `bad`: actions[0].notifier: no notifier named `pager`"),
        (r#"{ type = "sample", one_in = 0 }"#, "rule `bad`: actions[0].one_in: must be at least 1"),
        (r#"{ type = "rate_limit", per_second = 0.0 }"#, "rule `bad`: actions[0].per_second"),
        (r#"{ type = "redact", patterns = ["ssn"] }"#, "rule `bad`: actions[0].patterns[0]: unknown pattern `ssn`"),
        (r#"{ type = "redact", regex = "[" }"#, "rule `bad`: actions[0].regex: invalid regex"),
        (r#"{ type = "set", field = "host", value = "x" }"#, "rule `bad`: actions[0].field: `host` cannot be set"),
        (r#"{ type = "set", field = "level", value = "loud" }"#, "rule `bad`: actions[0].value"),
        (r#"{ type = "alert", notifier = "oncall", window = "2m" }"#, "rule `bad`: actions[0].above: set exactly one of above and rate_above"),
        (r#"{ type = "alert", notifier = "oncall", window = "0s", above = 1 }"#, "rule `bad`: actions[0].window"),
    ];
    for (action, want) in actions {
        let text = format!("[[rules]]\nname = \"bad\"\nactions = [{{ type = \"tag\", tags = [\"x\"] }}, {action}]\n")
            .replace("actions[0]", "actions[1]");
        let err = try_engine(&text).unwrap_err();
        let want = want.replace("actions[0]", "actions[1]");
        assert!(err.starts_with(&want), "{err}\n  wanted: {want}");
    }
    // Serde-level mistakes name the key path.
    let err =
        try_engine("[[rules]]\nname = \"x\"\nwhen = { field = \"a\", equal = 1 }\nactions = []\n")
            .unwrap_err();
    assert!(
        err.starts_with("rules[0].when") && err.contains("equal"),
        "{err}"
    );
    let err = try_engine("[[rules]]\nname = \"x\"\nactions = [{ type = \"drop\", now = true }]\n")
        .unwrap_err();
    assert!(
        err.starts_with("rules[0].actions[0]") && err.contains("now"),
        "{err}"
    );
    let err =
        try_engine("[[rules]]\nname = \"x\"\nactions = [{ type = \"explode\" }]\n").unwrap_err();
    assert!(err.contains("explode"), "{err}");
    let err = try_engine("[[rules]]\nname = \"x\"\nactions = []\n").unwrap_err();
    assert!(
        err.starts_with("rule `x`: actions: a rule needs at least one action"),
        "{err}"
    );
    let err =
        try_engine("[[rules]]\nname = \"a b\"\nactions = [{ type = \"drop\" }]\n").unwrap_err();
    assert!(err.starts_with("rule `a b`: name:"), "{err}");
    let err = try_engine("[[rules]]\nname = \"a\"\nactions = [{ type = \"drop\" }]\n[[rules]]\nname = \"a\"\nactions = [{ type = \"drop\" }]\n").unwrap_err();
    assert!(err.contains("another rule is already named `a`"), "{err}");
}

#[test]
fn no_rule_matching_means_no_change() {
    let eng = engine(
        "[[rules]]\nname = \"r\"\nwhen = { field = \"level\", gte = \"error\" }\nactions = [{ type = \"tag\", tags = [\"x\"] }, { type = \"redact\", patterns = [\"all\"] }]\n",
    );
    let original = ev(Some(Level::Info), "user bob@example.com from 10.0.0.1", &[]);
    let mut e = original.clone();
    assert_eq!(eng.apply(&mut e), Verdict::Keep);
    assert_eq!(e, original);
    assert!(matches!(e.parsed.message, Cow::Borrowed(_)));
}
