//! Tests of the logfmt parser.

use super::*;
use crate::parse::fields::{rank, MESSAGE_KEYS, TIME_KEYS};
use crate::parse::testkit::{check_cases, check_refuses, ctx, field, ts};
use crate::parse::Zone;
use proptest::prelude::*;

fn parse(line: &str) -> Option<Parsed<'_>> {
    LogfmtParser.parse(line, &ctx())
}

fn s(v: &str) -> Value<'_> {
    Value::Str(Cow::Borrowed(v))
}

#[test]
fn slog_text_handler() {
    let p = parse(r#"time=2026-11-22T10:00:00.000Z level=INFO msg="hello world" user=42 ratio=0.5 ok=true path=/api/v1"#).unwrap();
    assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00Z")));
    assert_eq!(p.level, Some(Level::Info));
    assert_eq!(p.message, "hello world");
    assert!(matches!(p.message, Cow::Borrowed(_)));
    assert_eq!(
        p.fields,
        vec![
            (Cow::Borrowed("user"), Value::Int(42)),
            (Cow::Borrowed("ratio"), Value::Float(0.5)),
            (Cow::Borrowed("ok"), Value::Bool(true)),
            (Cow::Borrowed("path"), s("/api/v1")),
        ]
    );
}

#[test]
fn logrus_and_gokit() {
    let p = parse(
        r#"time="2026-11-22T11:00:00+01:00" level=warning msg="disk \"/var\" at 91%" mount=/var"#,
    )
    .unwrap();
    assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00Z")));
    assert_eq!(p.level, Some(Level::Warn));
    assert_eq!(p.message, r#"disk "/var" at 91%"#);
    assert!(matches!(p.message, Cow::Owned(_)));

    let p = parse("ts=2026-11-22T10:00:00.123456789Z caller=main.go:42 level=debug msg=starting component=http addr=:8080").unwrap();
    assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00.123456789Z")));
    assert_eq!(p.level, Some(Level::Debug));
    assert_eq!(p.message, "starting");
    assert_eq!(field(&p, "addr"), Some(&s(":8080")));
    assert_eq!(field(&p, "caller"), Some(&s("main.go:42")));

    let p = parse("ts=1795341600.123456 lvl=eror msg=\"db down\" err=\"dial tcp: i/o timeout\"")
        .unwrap();
    assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00.123456Z")));
    assert_eq!(p.level, Some(Level::Error));
    let p = parse("t=2026-11-22T10:00:00+0000 lvl=dbug msg=x").unwrap();
    assert_eq!(p.level, Some(Level::Debug));
    assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00Z")));
}

#[test]
fn heroku_router() {
    let line = r#"at=error code=H12 desc="Request timeout" method=GET path="/" host=shop.herokuapp.com request_id=8601b555-6a83-4c12-8269-97c8e32cdb22 fwd="203.0.113.7" dyno=web.1 connect=0ms service=30000ms status=503 bytes=0 protocol=https"#;
    let p = parse(line).unwrap();
    assert_eq!(p.level, Some(Level::Error));
    assert_eq!(p.message, line);
    assert_eq!(field(&p, "at"), Some(&s("error")));
    assert_eq!(field(&p, "status"), Some(&Value::Int(503)));
    assert_eq!(field(&p, "service"), Some(&s("30000ms")));
    assert_eq!(field(&p, "dyno"), Some(&s("web.1")));
}

#[test]
fn values_and_escapes() {
    let p = parse(r#"msg=m a=-12 b=007 c=1.2.3 d=1e3 e= f="" g="tab\there" h="\u00e9\U0001F600\ud83d\ude00\x41\q" i=99999999999999999999 j=x=y k flag"#).unwrap();
    assert_eq!(field(&p, "a"), Some(&Value::Int(-12)));
    assert_eq!(field(&p, "b"), Some(&s("007")));
    assert_eq!(field(&p, "c"), Some(&s("1.2.3")));
    assert_eq!(field(&p, "d"), Some(&Value::Float(1000.0)));
    assert_eq!(field(&p, "e"), Some(&s("")));
    assert_eq!(field(&p, "f"), Some(&s("")));
    assert_eq!(field(&p, "g"), Some(&s("tab\there")));
    assert_eq!(field(&p, "h"), Some(&s("\u{e9}\u{1F600}\u{1F600}A\\q")));
    assert_eq!(field(&p, "i"), Some(&s("99999999999999999999")));
    assert_eq!(field(&p, "j"), Some(&s("x=y")));
    assert_eq!(field(&p, "k"), Some(&Value::Bool(true)));
    assert_eq!(field(&p, "flag"), Some(&Value::Bool(true)));
    // Unterminated quote: the rest of the line.
    let p = parse(r#"level=info msg="cut off here"#).unwrap();
    assert_eq!(p.message, "cut off here");
    // Numbers as message text stay as written; duplicates: last wins.
    let p = parse("msg=42 a=1 a=2").unwrap();
    assert_eq!(p.message, "42");
    assert_eq!(p.fields, vec![(Cow::Borrowed("a"), Value::Int(2))]);
    // Quoted numbers stay strings.
    let p = parse(r#"a="42" b="true""#).unwrap();
    assert_eq!(field(&p, "a"), Some(&s("42")));
    assert_eq!(field(&p, "b"), Some(&s("true")));
}

#[test]
fn no_message_and_zones() {
    let p = parse("level=info msg=done n=3\r").unwrap();
    assert_eq!(field(&p, "n"), Some(&Value::Int(3)));
    let line = "  level=info component=gc freed=1024  ";
    let p = parse(line).unwrap();
    assert_eq!(p.message, line.trim());
    assert_eq!(p.level, Some(Level::Info));
    assert_eq!(field(&p, "level"), Some(&s("info")));
    let tokyo = ParseContext {
        zone: Zone::parse("+09:00").unwrap(),
        now: ts("2026-11-22T12:00:00Z"),
    };
    let p = LogfmtParser
        .parse(r#"time="2026-11-22 19:00:00" msg=x"#, &tokyo)
        .unwrap();
    assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00Z")));
}

#[test]
fn not_logfmt() {
    for line in [
        "",
        "key=value",
        "hello world",
        "retrying with x=5 after timeout",
        "the quick brown fox a=1 b=2",
        "a=1 b=2 and then some more words",
        " =1 b=2 c=3",
        r#""a"=1 b=2"#,
        r#"{"time":"2026-11-22T10:00:00Z","level":"info","msg":"a=b c=d"}"#,
        "Nov 22 10:00:00 web-1 app[1]: user=bob action=login",
        "<34>1 2026-11-22T10:00:02.003Z web-1 su 2301 ID47 - a=1 b=2",
        "2026-11-22T10:00:00Z level=info msg=hi",
        "2026-11-22 10:00:00,123 ERROR [main] x - y=1 z=2",
        r#"203.0.113.7 - - [22/Nov/2026:10:00:00 +0000] "GET /?a=1&b=2 HTTP/1.1" 200 5"#,
        "I1122 10:00:00.000000    1 main.go:12] msg a=1 b=2",
        "[INFO] a=1 b=2",
        "a:b=1 c=2",
    ] {
        assert!(parse(line).is_none(), "{line}");
    }
}

#[test]
fn number_kinds() {
    for (s, k) in [
        ("0", Some(false)),
        ("-7", Some(false)),
        ("12", Some(false)),
        ("1.5", Some(true)),
        ("-0.25", Some(true)),
        ("1e-3", Some(true)),
        ("2E+10", Some(true)),
        ("01", None),
        ("1.", None),
        (".5", None),
        ("-", None),
        ("1e", None),
        ("inf", None),
        ("NaN", None),
        ("12ms", None),
        ("+1", None),
    ] {
        assert_eq!(number_kind(s), k, "{s}");
    }
}

/// Go's `strconv.Quote`-style quoting, for the round trip.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

proptest! {
    #[test]
    fn never_panics(line in "\\PC*") {
        let _ = parse(&line);
    }

    #[test]
    fn never_panics_on_logfmtish(line in r#"[a-z =\\"\tuUx0-9é😀]{0,60}"#) {
        let _ = parse(&line);
    }

    #[test]
    fn round_trips_values(
        msg in "\\PC*|[ -~\n\t\"\\\\]*",
        s in "\\PC*",
        word in "[a-zA-Z][a-zA-Z0-9_./:-]{0,20}",
        key in "[a-z][a-z_]{0,11}",
        i in any::<i64>(),
        f in -1e300f64..1e300,
        nanos in 1_000_000_000_000_000_000i64..4_000_000_000_000_000_000,
    ) {
        prop_assume!(!msg.ends_with('\n'));
        prop_assume!(rank(TIME_KEYS, &key).is_none()
            && rank(LEVEL_KEYS, &key).is_none()
            && rank(MESSAGE_KEYS, &key).is_none()
            && !["at", "n", "fl", "w", "flag"].contains(&key.as_str()));
        prop_assume!(!matches!(word.as_str(), "true" | "false"));
        let line = format!(
            "ts={nanos} level=warn msg={} {key}={} n={i} fl={f:?} w={word} flag",
            quote(&msg),
            quote(&s),
        );
        let p = parse(&line).unwrap();
        prop_assert_eq!(p.timestamp, Some(Timestamp(nanos)));
        prop_assert_eq!(p.level, Some(Level::Warn));
        prop_assert_eq!(p.message.as_ref(), msg.as_str());
        prop_assert_eq!(field(&p, &key), Some(&Value::Str(Cow::Owned(s.clone()))));
        prop_assert_eq!(field(&p, "n"), Some(&Value::Int(i)));
        prop_assert_eq!(field(&p, "fl"), Some(&Value::Float(f)));
        prop_assert_eq!(field(&p, "w"), Some(&Value::Str(Cow::Owned(word.clone()))));
        prop_assert_eq!(field(&p, "flag"), Some(&Value::Bool(true)));
    }
}

#[test]
fn corpus_cases() {
    assert!(check_cases("logfmt", &LogfmtParser) >= 15);
    check_refuses(&["json", "syslog"], &LogfmtParser);
}
