//! Tests of the JSON parser: the shapes structured loggers write, role priorities, values
//! and the shared corpus.

use std::borrow::Cow;

use logferry_shared::event::{Level, Timestamp};
use proptest::prelude::*;

use super::*;
use crate::parse::fields::{rank, LEVEL_KEYS, MESSAGE_KEYS, TIME_KEYS};
use crate::parse::testkit::{check_cases, check_refuses, ctx, field, ts};

fn parse(line: &str) -> Option<Parsed<'_>> {
    JsonParser.parse(line, &ctx())
}

fn s(v: &str) -> Value<'_> {
    Value::Str(Cow::Borrowed(v))
}

#[test]
fn pino() {
    let p = parse(r#"{"level":30,"time":1795341600123,"pid":4242,"hostname":"api-7d9","reqId":"req-1","msg":"request completed","responseTime":12.5}"#).unwrap();
    assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00.123Z")));
    assert_eq!(p.level, Some(Level::Info));
    assert_eq!(p.message, "request completed");
    assert_eq!(
        p.fields,
        vec![
            (Cow::Borrowed("pid"), Value::Int(4242)),
            (Cow::Borrowed("hostname"), s("api-7d9")),
            (Cow::Borrowed("reqId"), s("req-1")),
            (Cow::Borrowed("responseTime"), Value::Float(12.5)),
        ]
    );
    assert!(matches!(p.message, Cow::Borrowed(_)));
    assert!(p.fields.iter().all(|(k, _)| matches!(k, Cow::Borrowed(_))));
}

#[test]
fn bunyan_zap_logrus() {
    let p = parse(r#"{"name":"shop","hostname":"web-1","pid":17,"level":50,"err":{"message":"boom","name":"Error"},"msg":"payment failed","time":"2026-11-22T10:00:00.000Z","v":0}"#).unwrap();
    assert_eq!(p.level, Some(Level::Error));
    assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00Z")));
    assert_eq!(
        field(&p, "err"),
        Some(&Value::Json(Cow::Borrowed(
            r#"{"message":"boom","name":"Error"}"#
        )))
    );
    assert_eq!(field(&p, "v"), Some(&Value::Int(0)));

    let p = parse(r#"{"level":"warn","ts":1795341600.5,"caller":"orders/sync.go:88","msg":"retrying","attempt":3,"backoff":"2s"}"#).unwrap();
    assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00.5Z")));
    assert_eq!(p.level, Some(Level::Warn));
    assert_eq!(field(&p, "caller"), Some(&s("orders/sync.go:88")));

    let p = parse(r#"{"level":"error","msg":"db timeout","time":"2026-11-22T11:00:00+01:00","table":"orders"}"#).unwrap();
    assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00Z")));
    assert_eq!(p.level, Some(Level::Error));
    assert_eq!(p.fields.len(), 1);
}

#[test]
fn ecs_nested_and_dotted() {
    let line = r#"{"@timestamp":"2026-11-22T10:00:00.250Z","log":{"level":"WARN","logger":"co.shop.Api"},"message":"slow","ecs.version":"1.6.0","service":{"name":"api"}}"#;
    let p = parse(line).unwrap();
    assert_eq!(p.level, Some(Level::Warn));
    assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00.25Z")));
    assert_eq!(p.message, "slow");
    assert_eq!(
        field(&p, "log"),
        Some(&Value::Json(Cow::Owned(
            r#"{"logger":"co.shop.Api"}"#.into()
        )))
    );
    assert_eq!(field(&p, "ecs.version"), Some(&s("1.6.0")));

    let p = parse(r#"{"@timestamp":"2026-11-22T10:00:00Z","log":{"level":"error"},"message":"x"}"#)
        .unwrap();
    assert_eq!(p.level, Some(Level::Error));
    assert!(field(&p, "log").is_none());

    let p = parse(r#"{"@timestamp":"2026-11-22T10:00:00Z","log.level":"debug","log.logger":"a","message":"x"}"#).unwrap();
    assert_eq!(p.level, Some(Level::Debug));
    assert!(field(&p, "log.level").is_none());
    assert_eq!(field(&p, "log.logger"), Some(&s("a")));
}

#[test]
fn priorities_and_unusable_keys() {
    // `time` is not a time, so `ts` wins and `time` stays a field.
    let p = parse(r#"{"time":"slow","ts":"2026-11-22T10:00:00Z","severity":"ERROR","level":"verbose-ish","msg":"m"}"#).unwrap();
    assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00Z")));
    assert_eq!(field(&p, "time"), Some(&s("slow")));
    assert_eq!(p.level, Some(Level::Error));
    assert_eq!(field(&p, "level"), Some(&s("verbose-ish")));
    // `msg` beats `message` regardless of order; `message` stays a field.
    let p = parse(r#"{"message":"second","msg":"first"}"#).unwrap();
    assert_eq!(p.message, "first");
    assert_eq!(field(&p, "message"), Some(&s("second")));
    // A non-string message key is a field.
    let p = parse(r#"{"msg":42,"text":"hello"}"#).unwrap();
    assert_eq!(p.message, "hello");
    assert_eq!(field(&p, "msg"), Some(&Value::Int(42)));
    // Small numbers are not epochs.
    let p = parse(r#"{"t":5,"msg":"x"}"#).unwrap();
    assert_eq!(p.timestamp, None);
    assert_eq!(field(&p, "t"), Some(&Value::Int(5)));
}

#[test]
fn case_insensitive_keys_serilog_and_python() {
    let p = parse(r#"{"Timestamp":"2026-11-22T10:00:00.1234567+00:00","Level":"Warning","MessageTemplate":"Disk {Disk} low","RenderedMessage":"Disk \"C:\" low","Properties":{"Disk":"C:"}}"#).unwrap();
    assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00.1234567Z")));
    assert_eq!(p.level, Some(Level::Warn));
    assert_eq!(p.message, "Disk \"C:\" low");
    assert!(matches!(p.message, Cow::Owned(_)));
    assert_eq!(field(&p, "MessageTemplate"), Some(&s("Disk {Disk} low")));

    let p =
        parse(r#"{"@t":"2026-11-22T10:00:00.000Z","@mt":"User {UserId} signed in","UserId":42}"#)
            .unwrap();
    assert_eq!(p.level, Some(Level::Info), "CLEF omits @l for info");
    assert_eq!(p.message, "User {UserId} signed in");

    let p = parse(r#"{"asctime":"2026-11-22 10:00:00,123","levelname":"ERROR","name":"app.db","message":"lost connection"}"#).unwrap();
    assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00.123Z")));
    assert_eq!(p.level, Some(Level::Error));
}

#[test]
fn docker_gelf_and_zones() {
    let p = parse(
        r#"{"log":"GET /healthz 200\n","stream":"stdout","time":"2026-11-22T10:00:00.123456789Z"}"#,
    )
    .unwrap();
    assert_eq!(p.message, "GET /healthz 200");
    assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00.123456789Z")));
    assert_eq!(field(&p, "stream"), Some(&s("stdout")));

    let p = parse(r#"{"version":"1.1","host":"db-2","short_message":"checkpoint","timestamp":1795341600.25,"level":4,"_query_ms":88}"#).unwrap();
    assert_eq!(p.level, Some(Level::Warn));
    assert!(field(&p, "level").is_none());
    assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00.25Z")));

    let berlin = ParseContext {
        zone: Zone::parse("Europe/Berlin").unwrap(),
        now: ts("2026-11-22T12:00:00Z"),
    };
    let p = JsonParser
        .parse(r#"{"time":"2026-11-22 11:00:00","msg":"x"}"#, &berlin)
        .unwrap();
    assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00Z")));
    let p = JsonParser
        .parse(r#"{"time":"2026-11-22T11:00:00Z","msg":"x"}"#, &berlin)
        .unwrap();
    assert_eq!(p.timestamp, Some(ts("2026-11-22T11:00:00Z")));
    // Epochs as strings, in every unit.
    for t in [
        "1795341600",
        "1795341600000",
        "1795341600000000",
        "1795341600000000000",
    ] {
        let line = format!(r#"{{"ts":"{t}","msg":"x"}}"#);
        assert_eq!(
            parse(&line).unwrap().timestamp,
            Some(ts("2026-11-22T10:00:00Z"))
        );
    }
}

#[test]
fn no_message_keeps_everything() {
    let line = r#"  {"time":"2026-11-22T10:00:00Z","level":"info","user":"bob"}  "#;
    let p = parse(line).unwrap();
    assert_eq!(p.message, line.trim());
    assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00Z")));
    assert_eq!(p.level, Some(Level::Info));
    assert_eq!(p.fields.len(), 3);
    let p = parse("{}").unwrap();
    assert_eq!(p.message, "{}");
    assert!(p.fields.is_empty());
}

#[test]
fn values() {
    let p = parse(r#"{"msg":"x","a":-0,"b":1.5e3,"c":18446744073709551616,"d":1e999,"e":null,"f":[1,{"g":2}],"h":false,"k\"q":"v\u00e9","u":"\ud800"}"#).unwrap();
    assert_eq!(field(&p, "a"), Some(&Value::Int(0)));
    assert_eq!(field(&p, "b"), Some(&Value::Float(1500.0)));
    assert_eq!(field(&p, "c"), Some(&s("18446744073709551616")));
    assert_eq!(field(&p, "d"), Some(&s("1e999")));
    assert_eq!(field(&p, "e"), Some(&Value::Null));
    assert_eq!(
        field(&p, "f"),
        Some(&Value::Json(Cow::Borrowed(r#"[1,{"g":2}]"#)))
    );
    assert_eq!(field(&p, "h"), Some(&Value::Bool(false)));
    assert_eq!(
        field(&p, "k\"q"),
        Some(&Value::Str(Cow::Owned("v\u{e9}".into())))
    );
    assert_eq!(field(&p, "u"), Some(&s("\\ud800")));
}

#[test]
fn duplicate_keys_last_wins() {
    let p = parse(r#"{"a":1,"msg":"first","b":2,"a":3,"msg":"second"}"#).unwrap();
    assert_eq!(p.message, "second");
    assert_eq!(
        p.fields,
        vec![
            (Cow::Borrowed("a"), Value::Int(3)),
            (Cow::Borrowed("b"), Value::Int(2))
        ]
    );
    // Past the hash-index threshold too.
    let mut line = String::from("{");
    for i in 0..100 {
        line.push_str(&format!(r#""k{}":{},"#, i % 40, i));
    }
    line.push_str(r#""msg":"m"}"#);
    let p = parse(&line).unwrap();
    assert_eq!(p.fields.len(), 40);
    assert_eq!(field(&p, "k0"), Some(&Value::Int(80)));
    assert_eq!(field(&p, "k39"), Some(&Value::Int(79)));
}

#[test]
fn not_json_objects() {
    for line in [
        "",
        "   ",
        "{",
        "}",
        "{}x",
        "x{}",
        "[1,2]",
        r#""just a string""#,
        "42",
        r#"{"a":1}{"b":2}"#,
        r#"{"a":1,}"#,
        r#"{'a':1}"#,
        r#"{"a":1} trailing"#,
        "{ this is prose in braces }",
        r#"time=2026-11-22T10:00:00Z level=info msg="hello {world}""#,
        "time=2026-11-22T10:00:00Z level=info msg={}",
        "Nov 22 10:00:00 web-1 sshd[2211]: Accepted publickey for deploy",
        r#"<34>1 2026-11-22T10:00:02.003Z web-1 su 2301 ID47 - {"a":1}"#,
        r#"2026-11-22T10:00:00Z INFO {"a":1}"#,
        r#"203.0.113.7 - - [22/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5"#,
    ] {
        assert!(parse(line).is_none(), "{line}");
    }
    // Deep nesting is skipped without recursion: fine, it is one raw field.
    let deep = format!("{{\"a\":{}{}}}", "[".repeat(5000), "]".repeat(5000));
    assert!(matches!(
        field(&parse(&deep).unwrap(), "a"),
        Some(Value::Json(_))
    ));
}

proptest! {
    #[test]
    fn never_panics(line in "\\PC*") {
        let _ = parse(&line);
    }

    #[test]
    fn never_panics_on_jsonish(line in r#"[ {}\[\]":,.0-9a-zA-Z\\eE+-]{0,60}"#) {
        let _ = parse(&line);
    }

    #[test]
    fn round_trips_values(
        msg in "\\PC*",
        s in "\\PC*",
        key in "[a-z_]{1,12}",
        i in any::<i64>(),
        f in -1e300f64..1e300,
        b in any::<bool>(),
        nanos in 1_000_000_000_000_000_000i64..4_000_000_000_000_000_000,
    ) {
        prop_assume!(!msg.ends_with('\n'));
        prop_assume!(rank(TIME_KEYS, &key).is_none()
            && rank(LEVEL_KEYS, &key).is_none()
            && rank(MESSAGE_KEYS, &key).is_none()
            && !["n", "fl", "b", "arr"].contains(&key.as_str()));
        let line = serde_json::json!({
            "ts": nanos,
            "level": "warn",
            "msg": msg,
            key.clone(): s,
            "n": i,
            "fl": f,
            "b": b,
            "arr": [i, s],
        })
        .to_string();
        let p = parse(&line).unwrap();
        prop_assert_eq!(p.timestamp, Some(Timestamp(nanos)));
        prop_assert_eq!(p.level, Some(Level::Warn));
        prop_assert_eq!(p.message.as_ref(), msg.as_str());
        prop_assert_eq!(field(&p, &key), Some(&Value::Str(Cow::Owned(s.clone()))));
        prop_assert_eq!(field(&p, "n"), Some(&Value::Int(i)));
        prop_assert_eq!(field(&p, "b"), Some(&Value::Bool(b)));
        match field(&p, "fl") {
            Some(Value::Float(g)) => prop_assert_eq!(*g, f),
            // serde_json writes integral floats such as 3.0 as `3.0`, never bare `3`.
            other => prop_assert!(false, "fl: {:?}", other),
        }
        match field(&p, "arr") {
            Some(Value::Json(raw)) => {
                let back: serde_json::Value = serde_json::from_str(raw).unwrap();
                prop_assert_eq!(back, serde_json::json!([i, s]));
            }
            other => prop_assert!(false, "arr: {:?}", other),
        }
    }
}

#[test]
fn corpus_cases() {
    assert!(check_cases("json", &JsonParser) >= 15);
    check_refuses(&["logfmt", "syslog"], &JsonParser);
}
