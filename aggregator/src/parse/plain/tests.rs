//! Tests of the plain-text parser.

use super::*;
use crate::parse::testkit::{corpus, ctx, field, s, ts};
use crate::parse::time;
use proptest::prelude::*;

fn p(line: &str) -> Parsed<'_> {
    PlainParser
        .parse(line, &ctx())
        .expect("plain always parses")
}

#[test]
fn timestamp_layouts() {
    let cases = [
        ("2026-11-22T10:00:00.123Z hello", "2026-11-22T10:00:00.123Z"),
        ("2026/11/22 10:00:00 hello", "2026-11-22T10:00:00Z"),
        ("[2026-11-22 10:00:00,5] hello", "2026-11-22T10:00:00.5Z"),
        ("Nov 22 10:00:00 hello", "2026-11-22T10:00:00Z"),
        ("[Nov  2 10:00:00] hello", "2026-11-02T10:00:00Z"),
        ("[Sun Dec 04 04:47:44 2005] hello", "2005-12-04T04:47:44Z"),
        (
            "[Sun Nov 22 10:00:00.250000 2026] hello",
            "2026-11-22T10:00:00.25Z",
        ),
        ("Sun Nov 22 10:00:00 hello", "2026-11-22T10:00:00Z"),
        ("Nov 22 10:00:00 2025 hello", "2025-11-22T10:00:00Z"),
        ("11-22 10:00:00.123 hello", "2026-11-22T10:00:00.123Z"),
        ("[11.22 10:00:00] hello", "2026-11-22T10:00:00Z"),
        ("081109 203615 hello", "2008-11-09T20:36:15Z"),
        ("17/06/09 20:10:40 hello", "2017-06-09T20:10:40Z"),
        ("20171223-22:15:29:606|x|hello", "2017-12-23T22:15:29.606Z"),
        ("20171223-22:16:0:11|x|hello", "2017-12-23T22:16:00.011Z"),
        ("20171223T22:15:29.5 hello", "2017-12-23T22:15:29.5Z"),
        ("1795341600.123 hello", "2026-11-22T10:00:00.123Z"),
        ("1795341600 hello", "2026-11-22T10:00:00Z"),
        ("1795341600123 hello", "2026-11-22T10:00:00.123Z"),
        ("[1795341600] hello", "2026-11-22T10:00:00Z"),
        ("[22/Nov/2026:11:00:00 +0100] hello", "2026-11-22T10:00:00Z"),
        ("- 1795341600 hello", "2026-11-22T10:00:00Z"),
    ];
    for (line, want) in cases {
        let got = p(line);
        assert_eq!(got.timestamp, Some(ts(want)), "{line}");
        assert!(got.message.ends_with("hello"), "{line}: {:?}", got.message);
    }
    // December lines read in January, logcat flavour.
    let jan = ParseContext {
        zone: time::Zone::Utc,
        now: ts("2027-01-01T00:10:00Z"),
    };
    let got = PlainParser.parse("12-31 23:59:59.000 x", &jan).unwrap();
    assert_eq!(got.timestamp, Some(ts("2026-12-31T23:59:59Z")));
}

#[test]
fn not_timestamps() {
    for line in [
        "10:00:00 started",
        "12:00 noon",
        "1234 items",
        "123456789 items",
        "2026-11-22 only a date",
        "13-45 10:00:00 bad month",
        "081109 2036151 too many digits",
        "Nov 22 10:00 no seconds",
        "Foo 22 10:00:00 x",
        "[10:00:00] bracketed time",
        "[2026-11-22 10:00:00 trailing] x",
        "1795341600x glued",
        "2026-11-22T10:00:00Zulu",
        "the 1795341600 is not at the start",
    ] {
        assert_eq!(p(line).timestamp, None, "{line}");
        assert_eq!(p(line).message, line.trim_end(), "{line}");
    }
}

#[test]
fn zone_applies_to_zoneless_layouts() {
    let berlin = ParseContext {
        zone: time::Zone::parse("Europe/Berlin").unwrap(),
        now: ts("2026-11-22T12:00:00Z"),
    };
    for line in [
        "2026-11-22 11:00:00 x",
        "11-22 11:00:00.000 x",
        "261122 110000 x",
        "Nov 22 11:00:00 x",
    ] {
        let got = PlainParser.parse(line, &berlin).unwrap();
        assert_eq!(got.timestamp, Some(ts("2026-11-22T10:00:00Z")), "{line}");
    }
    let got = PlainParser.parse("1795341600.5 x", &berlin).unwrap();
    assert_eq!(got.timestamp, Some(ts("2026-11-22T10:00:00.5Z")));
}

#[test]
fn levels_after_the_timestamp() {
    let cases = [
        ("2026-11-22 10:00:00 ERROR db down", Level::Error, "db down"),
        (
            "2026-11-22 10:00:00 [warn] disk 91%",
            Level::Warn,
            "disk 91%",
        ),
        ("2026-11-22 10:00:00 WARNING: slow", Level::Warn, "slow"),
        (
            "2026-11-22 10:00:00 - INFO - started",
            Level::Info,
            "started",
        ),
        ("2026-11-22 10:00:00, Info     CBS x", Level::Info, "CBS x"),
        ("2026-11-22 10:00:00 <crit> boom", Level::Fatal, "boom"),
        ("[2026-11-22 10:00:00] debug: x=1", Level::Debug, "x=1"),
        (
            "2026-11-22 10:00:00 error cannot open",
            Level::Error,
            "cannot open",
        ),
        ("[WARN] 2026-11-22 10:00:00 late", Level::Warn, "late"),
        ("ERROR: 2026-11-22T10:00:00Z bad", Level::Error, "bad"),
    ];
    for (line, lv, msg) in cases {
        let got = p(line);
        assert!(got.timestamp.is_some(), "{line}");
        assert_eq!(got.level, Some(lv), "{line}");
        assert_eq!(got.message, msg, "{line}");
    }
}

#[test]
fn levels_without_a_timestamp() {
    let cases = [
        (
            "ERROR something broke",
            Some(Level::Error),
            "something broke",
        ),
        ("[warn] low disk", Some(Level::Warn), "low disk"),
        ("Warning: deprecated", Some(Level::Warn), "deprecated"),
        // Capitalised bare word: the level is taken, the word stays.
        (
            "Error handling request",
            Some(Level::Error),
            "Error handling request",
        ),
        (
            "info    padded columns",
            Some(Level::Info),
            "padded columns",
        ),
        // Further in: kept in the message.
        ("10:00:00 ERROR x", Some(Level::Error), "10:00:00 ERROR x"),
        (
            "host app[1]: error: bad thing",
            Some(Level::Error),
            "host app[1]: error: bad thing",
        ),
        // Prose: no level.
        (
            "the build failed with an error",
            None,
            "the build failed with an error",
        ),
        (
            "just some text ERROR later",
            None,
            "just some text ERROR later",
        ),
        ("ok then", None, "ok then"),
        ("OK done", None, "OK done"),
        ("Fine, thanks", None, "Fine, thanks"),
        ("config: reloaded", None, "config: reloaded"),
        ("E something", None, "E something"),
        ("W", None, "W"),
        ("  indented continuation", None, "  indented continuation"),
        // pid/tid layouts need a timestamp before them.
        ("1702 2395 D Tag: x", None, "1702 2395 D Tag: x"),
        ("148 INFO started", Some(Level::Info), "148 INFO started"),
        (
            "\tat com.example.Foo.bar(Foo.java:10)",
            None,
            "\tat com.example.Foo.bar(Foo.java:10)",
        ),
    ];
    for (line, lv, msg) in cases {
        let got = p(line);
        assert_eq!(got.timestamp, None, "{line}");
        assert_eq!(got.level, lv, "{line}");
        assert_eq!(got.message, msg, "{line}");
    }
}

#[test]
fn weak_words_only_in_brackets() {
    assert_eq!(
        p("2026-11-22 10:00:00 [OK] mounted").level,
        Some(Level::Info)
    );
    assert_eq!(p("2026-11-22 10:00:00 [OK] mounted").message, "mounted");
    let got = p("2026-11-22 10:00:00 ok mounted");
    assert_eq!(got.level, None);
    assert_eq!(got.message, "ok mounted");
    assert_eq!(p("2026-11-22 10:00:00 200 OK").level, None);
}

#[test]
fn logcat() {
    let got = p("11-22 10:00:00.123  1702  2395 D WindowManager: opening app");
    assert_eq!(got.timestamp, Some(ts("2026-11-22T10:00:00.123Z")));
    assert_eq!(got.level, Some(Level::Debug));
    assert_eq!(got.message, "opening app");
    assert_eq!(field(&got, "pid"), Some(&Value::Int(1702)));
    assert_eq!(field(&got, "tid"), Some(&Value::Int(2395)));
    assert_eq!(field(&got, "component"), Some(&s("WindowManager")));
    for (letter, lv) in [
        ("V", Level::Trace),
        ("I", Level::Info),
        ("W", Level::Warn),
        ("E", Level::Error),
        ("F", Level::Fatal),
        ("A", Level::Fatal),
    ] {
        let line = format!("11-22 10:00:00.123 1 2 {letter} Tag   : x");
        let got = p(&line);
        assert_eq!(got.level, Some(lv), "{line}");
        assert_eq!(got.message, "x");
        assert_eq!(field(&got, "component"), Some(&s("Tag")));
    }
    // Not a logcat letter, or not after a pid/tid pair.
    let got = p("11-22 10:00:00.123 1 2 X Tag: x");
    assert_eq!(got.level, None);
    assert_eq!(got.message, "1 2 X Tag: x");
    assert_eq!(p("2026-11-22 10:00:00 1 E x").level, None);
    assert_eq!(p("2026-11-22 10:00:00 I think so").level, None);
    // No tag colon: the message follows the letter.
    let got = p("11-22 10:00:00.123 1 2 I no tag here");
    assert_eq!(got.message, "no tag here");
    assert_eq!(field(&got, "component"), None);
}

#[test]
fn java_like_heads() {
    let got = p("2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.App: Created it");
    assert_eq!(got.level, Some(Level::Info));
    assert_eq!(got.message, "Created it");
    assert_eq!(field(&got, "thread"), Some(&s("main")));
    assert_eq!(field(&got, "logger"), Some(&s("org.apache.hadoop.App")));

    let got = p("2015-07-29 17:41:44,747 - WARN  [QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:Election@774] - Notification time out: 3200");
    assert_eq!(got.level, Some(Level::Warn));
    assert_eq!(got.message, "Notification time out: 3200");
    assert_eq!(
        field(&got, "thread"),
        Some(&s("QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:Election@774"))
    );

    let got =
        p("2026-11-22 10:00:00.000 ERROR [http-nio-8080-exec-1] c.e.web.Api - request failed");
    assert_eq!(got.message, "request failed");
    assert_eq!(field(&got, "logger"), Some(&s("c.e.web.Api")));

    let got =
        p("081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 terminating");
    assert_eq!(got.timestamp, Some(ts("2008-11-09T20:36:15Z")));
    assert_eq!(got.level, Some(Level::Info));
    assert_eq!(field(&got, "pid"), Some(&Value::Int(148)));
    assert_eq!(
        field(&got, "logger"),
        Some(&s("dfs.DataNode$PacketResponder"))
    );
    assert_eq!(got.message, "PacketResponder 1 terminating");

    // A bracket with blanks is not a thread; a plain word is not a logger.
    let got = p("2026-11-22 10:00:00 [error] [client 1.2.3.4] File does not exist");
    assert_eq!(field(&got, "thread"), None);
    assert_eq!(got.message, "[client 1.2.3.4] File does not exist");
    let got = p("2026-11-22 10:00:00 WARN Retrying: attempt 3");
    assert_eq!(field(&got, "logger"), None);
    assert_eq!(got.message, "Retrying: attempt 3");
}

#[test]
fn apache_module_level_and_prefix() {
    let got = p("[Sun Nov 22 10:00:00.123456 2026] [core:error] [pid 1:tid 2] AH00128: nope");
    assert_eq!(got.level, Some(Level::Error));
    assert_eq!(field(&got, "module"), Some(&s("core")));
    assert_eq!(got.message, "[pid 1:tid 2] AH00128: nope");

    let got = p("nova-api.log.1 2017-05-16 00:00:00.008 25746 INFO nova.api [req-1] GET /");
    assert_eq!(got.timestamp, Some(ts("2017-05-16T00:00:00.008Z")));
    assert_eq!(field(&got, "prefix"), Some(&s("nova-api.log.1")));
    assert_eq!(field(&got, "pid"), Some(&Value::Int(25746)));
    assert_eq!(got.level, Some(Level::Info));
    assert_eq!(got.message, "nova.api [req-1] GET /");
}

#[test]
fn scan_finds_structured_levels_only() {
    let got = p("- 1117838570 2005.06.03 R02-M1-N0 2005-06-03-15.42.50.675872 R02-M1-N0 RAS KERNEL INFO instruction cache parity error corrected");
    assert_eq!(got.timestamp, Some(ts("2005-06-03T22:42:50Z")));
    assert_eq!(got.level, Some(Level::Info));
    assert!(got
        .message
        .ends_with("RAS KERNEL INFO instruction cache parity error corrected"));
    let got = p("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; ERROR");
    assert_eq!(got.level, None);
    let got = p("Jun 15 04:06:20 combo logrotate: ALERT exited abnormally with [1]");
    assert_eq!(got.level, Some(Level::Fatal));
    assert_eq!(
        got.message,
        "combo logrotate: ALERT exited abnormally with [1]"
    );
    let got = p("Jul  2 02:32:17 host kernel[0]: [HID] [ATC] [Error] AppleDevice start");
    assert_eq!(got.level, Some(Level::Error));
}

#[test]
fn message_is_borrowed_and_trimmed() {
    let line = "2026-11-22 10:00:00 INFO hello   \r";
    let got = p(line);
    assert!(matches!(got.message, Cow::Borrowed("hello")));
    assert_eq!(p("").message, "");
    assert_eq!(p("2026-11-22T10:00:00Z").message, "");
    assert_eq!(p("2026-11-22T10:00:00Z INFO").message, "");
    assert_eq!(p("2026-11-22T10:00:00Z INFO").level, Some(Level::Info));
}

/// The shared corpus file for this format.
#[test]
fn corpus_cases() {
    let mut n = 0;
    for c in corpus("plain") {
        assert_eq!(c.format, "plain");
        let cx = ParseContext {
            zone: time::Zone::Utc,
            now: ts(c.now.as_deref().unwrap_or("2026-11-22T12:00:00Z")),
        };
        let got = PlainParser.parse(&c.line, &cx).unwrap();
        assert_eq!(got.timestamp, c.timestamp.as_deref().map(ts), "{}", c.line);
        assert_eq!(
            got.level.map(Level::as_str),
            c.level.as_deref(),
            "{}",
            c.line
        );
        assert_eq!(got.message, c.message, "{}", c.line);
        let mut keys: Vec<&str> = got.fields.iter().map(|(k, _)| k.as_ref()).collect();
        keys.sort_unstable();
        let total = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), total, "duplicate keys: {}", c.line);
        assert_eq!(
            got.fields.len(),
            c.fields.len(),
            "fields of {}: {:?}",
            c.line,
            got.fields
        );
        for (k, want) in &c.fields {
            let v = field(&got, k).unwrap_or_else(|| panic!("no {k}: {}", c.line));
            let v = match v {
                Value::Str(s) => serde_json::Value::String(s.to_string()),
                Value::Int(i) => (*i).into(),
                other => panic!("unexpected value {other:?}"),
            };
            assert_eq!(&v, want, "field {k}: {}", c.line);
        }
        n += 1;
    }
    assert!(n >= 15, "only {n} cases");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn never_panics_and_borrows(line in "\\PC{0,80}") {
        let got = PlainParser.parse(&line, &ctx()).unwrap();
        prop_assert!(line.contains(got.message.as_ref()));
    }

    #[test]
    fn never_panics_on_near_misses(
        head in prop::sample::select(vec![
            "2026-11-22 10:00:00", "[Sun Nov 22 10:00:00 2026]", "11-22 10:00:00.1",
            "081109 203615", "17/06/09 20:10:40", "1795341600.5", "- 1795341600",
            "Nov 22 10:00:00", "[", "20171223-22:15:29:606", "ERROR", "[core:warn]",
        ]),
        tail in "[ \\t0-9A-Za-z:\\[\\]\\-.,|$<>é]{0,40}",
    ) {
        let line = format!("{head}{tail}");
        let got = PlainParser.parse(&line, &ctx()).unwrap();
        prop_assert!(line.contains(got.message.as_ref()));
        let cut: String = line.chars().take(line.chars().count() / 2).collect();
        let _ = PlainParser.parse(&cut, &ctx());
    }
}
