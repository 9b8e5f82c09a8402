//! Tests of the custom-format parser.

use super::*;
use crate::parse::testkit::{ctx, field, s, ts};
use proptest::prelude::*;

fn grok(p: &str) -> CustomParser {
    CustomParser::new("mine", CustomPattern::Grok(p.into())).unwrap()
}

#[test]
fn regex_named_captures() {
    let p = CustomParser::new(
        "app",
        CustomPattern::Regex(
            r"^(?P<timestamp>\S+) \[(?P<level>\w+)\] (?P<user>\w+)@(?P<host>\S+): (?P<message>.*)$"
                .into(),
        ),
    )
    .unwrap();
    assert_eq!(p.name(), "app");
    let got = p
        .parse(
            "2026-11-22T10:00:00Z [WARN] alice@web-1: quota at 91%",
            &ctx(),
        )
        .unwrap();
    assert_eq!(got.timestamp, Some(ts("2026-11-22T10:00:00Z")));
    assert_eq!(got.level, Some(Level::Warn));
    assert_eq!(got.message, "quota at 91%");
    assert_eq!(
        got.fields,
        vec![("user".into(), s("alice")), ("host".into(), s("web-1"))]
    );
    assert!(matches!(got.message, Cow::Borrowed(_)));
    assert!(p.parse("not this format", &ctx()).is_none());
}

#[test]
fn without_message_capture_the_message_is_the_line() {
    let p = CustomParser::new("kv", CustomPattern::Regex(r"id=(?P<id>\d+)".into())).unwrap();
    let got = p.parse("job id=42 done", &ctx()).unwrap();
    assert_eq!(got.message, "job id=42 done");
    assert_eq!(field(&got, "id"), Some(&s("42")));
    assert_eq!(got.timestamp, None);
    assert_eq!(got.level, None);
}

#[test]
fn grok_basic() {
    let p = grok("%{TIMESTAMP_ISO8601:timestamp} %{LOGLEVEL:level} %{GREEDYDATA:message}");
    let got = p
        .parse("2026-11-22 10:00:00,123 ERROR db timeout after 30s", &ctx())
        .unwrap();
    assert_eq!(got.timestamp, Some(ts("2026-11-22T10:00:00.123Z")));
    assert_eq!(got.level, Some(Level::Error));
    assert_eq!(got.message, "db timeout after 30s");
    assert!(got.fields.is_empty());
}

#[test]
fn grok_access_log_with_conversions() {
    let p = grok(
        r#"^%{IP:client} %{NOTSPACE:ident} %{NOTSPACE:user} \[%{HTTPDATE:timestamp}\] "%{WORD:method} %{URIPATHPARAM:path} HTTP/%{NUMBER:http_version}" %{INT:status:int} %{INT:bytes:int} %{QS:referrer} %{QS:agent} %{NUMBER:duration:float}$"#,
    );
    let line = r#"203.0.113.7 - - [22/Nov/2026:11:00:00 +0100] "GET /a?b=1 HTTP/1.1" 200 5120 "-" "curl/8.5.0" 0.25"#;
    let got = p.parse(line, &ctx()).unwrap();
    assert_eq!(got.timestamp, Some(ts("2026-11-22T10:00:00Z")));
    assert_eq!(got.message, line, "no message capture");
    assert_eq!(field(&got, "client"), Some(&s("203.0.113.7")));
    assert_eq!(field(&got, "method"), Some(&s("GET")));
    assert_eq!(field(&got, "path"), Some(&s("/a?b=1")));
    assert_eq!(field(&got, "http_version"), Some(&s("1.1")));
    assert_eq!(field(&got, "status"), Some(&Value::Int(200)));
    assert_eq!(field(&got, "bytes"), Some(&Value::Int(5120)));
    assert_eq!(field(&got, "referrer"), Some(&s("\"-\"")));
    assert_eq!(field(&got, "agent"), Some(&s("\"curl/8.5.0\"")));
    assert_eq!(field(&got, "duration"), Some(&Value::Float(0.25)));
}

#[test]
fn grok_builtin_patterns_match_what_they_say() {
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("WORD", &["hello", "a_b1"], &["-"]),
        ("INT", &["42", "-7", "+3"], &["x"]),
        ("POSINT", &["1", "900"], &["0"]),
        ("NUMBER", &["3.14", "-2", ".5"], &["abc"]),
        (
            "IPV4",
            &["10.0.0.1", "255.255.255.255"],
            &["256.1.1.1", "1.2.3"],
        ),
        (
            "IPV6",
            &[
                "::1",
                "2001:db8::1",
                "fe80::1:2:3",
                "1:2:3:4:5:6:7:8",
                "::ffff:1.2.3.4",
                "::",
            ],
            &["10:00:00", "1:2:3"],
        ),
        ("IP", &["10.0.0.1", "2001:db8::ff00:42:8329"], &["host"]),
        ("HOSTNAME", &["web-1.example.com", "localhost"], &["-x"]),
        (
            "TIMESTAMP_ISO8601",
            &[
                "2026-11-22T10:00:00Z",
                "2026-11-22 10:00:00,123",
                "2026-11-22T10:00:00.5+01:00",
            ],
            &["22/11/2026"],
        ),
        ("HTTPDATE", &["22/Nov/2026:10:00:00 +0000"], &["2026-11-22"]),
        (
            "SYSLOGTIMESTAMP",
            &["Nov 22 10:00:00", "Nov  2 10:00:00"],
            &["2026-11-22"],
        ),
        (
            "LOGLEVEL",
            &["INFO", "warning", "Error", "CRIT", "notice"],
            &["hello"],
        ),
        (
            "UUID",
            &["123e4567-e89b-12d3-a456-426614174000"],
            &["123e4567"],
        ),
        (
            "PATH",
            &["/var/log/app.log", r"C:\Windows\x.dll"],
            &["relative"],
        ),
        (
            "URI",
            &["https://example.com/a?b=1#c", "ftp://h/x"],
            &["example.com"],
        ),
        ("QS", &[r#""a \"b\" c""#, "'single'"], &["unquoted"]),
        ("NOTSPACE", &["a/b:c"], &[" "]),
    ];
    for (name, good, bad) in cases {
        let p = grok(&format!("^%{{{name}:x}}$"));
        for g in *good {
            let got = p
                .parse(g, &ctx())
                .unwrap_or_else(|| panic!("{name} refused {g}"));
            assert_eq!(field(&got, "x"), Some(&s(g)), "{name} {g}");
        }
        for b in *bad {
            assert!(p.parse(b, &ctx()).is_none(), "{name} accepted {b}");
        }
    }
    // Every table entry compiles on its own.
    for (name, _) in GROK_PATTERNS {
        grok(&format!("%{{{name}}}"));
    }
}

#[test]
fn grok_timestamps_in_other_layouts() {
    let p = grok(r"^%{SYSLOGTIMESTAMP:timestamp} %{HOSTNAME:host} %{GREEDYDATA:message}$");
    let got = p.parse("Nov 22 10:00:00 web-1 hello", &ctx()).unwrap();
    assert_eq!(got.timestamp, Some(ts("2026-11-22T10:00:00Z")));
    assert_eq!(field(&got, "host"), Some(&s("web-1")));
    let p = grok(r"^%{NUMBER:timestamp} %{GREEDYDATA:message}$");
    for (line, want) in [
        ("1795341600 x", "2026-11-22T10:00:00Z"),
        ("1795341600123 x", "2026-11-22T10:00:00.123Z"),
        ("1795341600.5 x", "2026-11-22T10:00:00.5Z"),
    ] {
        assert_eq!(
            p.parse(line, &ctx()).unwrap().timestamp,
            Some(ts(want)),
            "{line}"
        );
    }
}

#[test]
fn unreadable_timestamp_and_level_are_kept_as_fields() {
    let p = grok(r"^%{NOTSPACE:timestamp} %{WORD:level} %{GREEDYDATA:message}$");
    let got = p
        .parse("yesterday loud something happened", &ctx())
        .unwrap();
    assert_eq!(got.timestamp, None);
    assert_eq!(got.level, None);
    assert_eq!(field(&got, "timestamp"), Some(&s("yesterday")));
    assert_eq!(field(&got, "level"), Some(&s("loud")));
    assert_eq!(got.message, "something happened");
    let got = p.parse("1795341600 3 boom", &ctx()).unwrap();
    assert_eq!(got.level, Some(Level::Error), "syslog severity digit");
}

#[test]
fn failed_conversions_keep_the_text() {
    let p = grok(r"^%{NOTSPACE:n:int} %{NOTSPACE:f:float}$");
    let got = p.parse("12x NaN", &ctx()).unwrap();
    assert_eq!(field(&got, "n"), Some(&s("12x")));
    assert_eq!(field(&got, "f"), Some(&s("NaN")));
    let got = p.parse("-12 1e3", &ctx()).unwrap();
    assert_eq!(field(&got, "n"), Some(&Value::Int(-12)));
    assert_eq!(field(&got, "f"), Some(&Value::Float(1000.0)));
}

#[test]
fn optional_captures_are_left_out() {
    let p = grok(r"^%{WORD:a}(?: %{INT:b:int})?$");
    let got = p.parse("hello", &ctx()).unwrap();
    assert_eq!(got.fields, vec![("a".into(), s("hello"))]);
}

#[test]
fn field_names_are_free_form() {
    let p = grok(r"^%{WORD:http.method} %{WORD:[url][path]}$");
    let got = p.parse("GET index", &ctx()).unwrap();
    assert_eq!(field(&got, "http.method"), Some(&s("GET")));
    assert_eq!(field(&got, "[url][path]"), Some(&s("index")));
}

#[test]
fn inline_named_groups_in_grok() {
    let p = grok(r"^%{WORD:verb} (?P<rest>.*)$");
    let got = p.parse("GET /x y", &ctx()).unwrap();
    assert_eq!(
        got.fields,
        vec![("verb".into(), s("GET")), ("rest".into(), s("/x y"))]
    );
}

#[test]
fn errors_name_the_problem() {
    let err = |p: CustomPattern| CustomParser::new("fmt", p).unwrap_err();
    let e = err(CustomPattern::Grok("%{FOO:x} %{WORD}".into()));
    assert!(e.contains("unknown grok pattern `%{FOO}`"), "{e}");
    assert!(e.contains("fmt"), "{e}");
    let e = err(CustomPattern::Grok("%{WORD:x".into()));
    assert!(e.contains("unterminated"), "{e}");
    let e = err(CustomPattern::Grok("%{}".into()));
    assert!(e.contains("empty grok reference"), "{e}");
    let e = err(CustomPattern::Grok("%{INT:x:bool}".into()));
    assert!(e.contains("unknown conversion `bool`"), "{e}");
    let e = err(CustomPattern::Grok("%{INT::int}".into()));
    assert!(e.contains("conversion without a field name"), "{e}");
    let e = err(CustomPattern::Grok("%{WORD:x} %{WORD:x}".into()));
    assert!(e.contains("field `x` is captured twice"), "{e}");
    let e = err(CustomPattern::Grok("%{WORD:x} (".into()));
    assert!(e.contains("bad regex"), "{e}");
    let e = err(CustomPattern::Regex("(?P<a>x".into()));
    assert!(e.contains("bad regex"), "{e}");
    let e = CustomParser::new(" ", CustomPattern::Regex("x".into())).unwrap_err();
    assert!(e.contains("name"), "{e}");
}

#[test]
fn grok_source_uses_internal_group_names() {
    let (src, fields) = compile_grok("%{INT:n:int} %{IP}").unwrap();
    assert!(src.starts_with("(?P<__grok0>[+-]?[0-9]+) (?:"), "{src}");
    assert_eq!(fields.len(), 1);
    assert_eq!(fields[0].1, "n");
    assert_eq!(fields[0].2, Conversion::Int);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn never_panics(line in "\\PC{0,120}") {
        let p = grok("%{TIMESTAMP_ISO8601:timestamp} %{LOGLEVEL:level} %{GREEDYDATA:message}");
        let q = grok(r"%{NOTSPACE:timestamp} %{NOTSPACE:level} %{INT:n:int} %{NUMBER:f:float}");
        let _ = p.parse(&line, &ctx());
        let _ = q.parse(&line, &ctx());
    }

    #[test]
    fn construction_never_panics(pattern in "[%{}A-Z_:a-z0-9()\\[\\]\\\\.*+? ]{0,40}") {
        let _ = CustomParser::new("p", CustomPattern::Grok(pattern.clone()));
        let _ = CustomParser::new("p", CustomPattern::Regex(pattern));
    }
}
